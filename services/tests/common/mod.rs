//! A host's services with instances attached by hand (no process): a
//! private runtime directory each, the real socket and token, and a
//! client that calls with any token.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use outboard_host::{Attachment, Manifest};
use outboard_proto::handshake::{ENV_HOST_SOCKET, ENV_HOST_TOKEN};
use outboard_proto::v1;
use outboard_proto::v1::host_service_client::HostServiceClient;
use outboard_services::{Services, ServicesOptions};
use tonic::Request;
use tonic::transport::Channel;

/// Host services over a private state directory.
pub struct World {
    pub services: Arc<Services>,
    pub state: tempfile::TempDir,
}

/// One instance attached by hand: its runtime directory, socket and token.
pub struct Attached {
    pub attachment: Option<Box<dyn Attachment>>,
    pub socket: PathBuf,
    pub token: String,
    pub dir: tempfile::TempDir,
}

impl World {
    pub fn new() -> World {
        World::with(|_| {})
    }

    pub fn with(change: impl FnOnce(&mut ServicesOptions)) -> World {
        let state = tempfile::tempdir().expect("state dir");
        let mut options = ServicesOptions::new(state.path().join("state"));
        change(&mut options);
        World {
            services: Services::open(options).expect("open services"),
            state,
        }
    }

    /// Attaches instance `name`, not yet described, whose plugin is this
    /// test's process.
    pub fn attach_only(&self, name: &str) -> Attached {
        self.attach_as(name, std::process::id())
    }

    /// Attaches and describes instance `name` whose plugin is process `pid`.
    pub fn attach_spawned(&self, name: &str, granted: &[&str], pid: u32) -> Attached {
        let attached = self.attach_as(name, pid);
        attached.describe(granted);
        attached
    }

    /// Attaches instance `name` whose plugin is process `pid`.
    fn attach_as(&self, name: &str, pid: u32) -> Attached {
        let dir = tempfile::Builder::new()
            .prefix("obs-")
            .tempdir_in("/tmp")
            .expect("runtime dir");
        // As the host makes it: private.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        let attachment = self
            .services
            .attacher()
            .attach(name, dir.path())
            .expect("attach");
        attachment.spawned(pid);
        let env: std::collections::HashMap<_, _> = attachment.env().into_iter().collect();
        Attached {
            socket: PathBuf::from(&env[ENV_HOST_SOCKET]),
            token: env[ENV_HOST_TOKEN].clone(),
            attachment: Some(attachment),
            dir,
        }
    }

    /// Attaches instance `name` and describes it as asking for and granted
    /// `granted`.
    pub fn attach(&self, name: &str, granted: &[&str]) -> Attached {
        let attached = self.attach_only(name);
        attached.describe(granted);
        attached
    }
}

impl Attached {
    pub fn describe(&self, granted: &[&str]) {
        let granted: Vec<String> = granted.iter().map(|s| s.to_string()).collect();
        self.attachment
            .as_ref()
            .expect("attached")
            .described(&manifest(&granted), &granted);
    }

    /// A client on this instance's socket.
    pub async fn client(&self) -> HostServiceClient<Channel> {
        let channel = outboard_host::launch::dial(&self.socket, Duration::from_secs(5))
            .await
            .expect("dial the host socket");
        HostServiceClient::new(channel)
    }

    /// Lets go of the attachment, as when the process exits.
    pub fn exit(&mut self) {
        self.attachment = None;
    }
}

/// A manifest asking for `permissions`.
pub fn manifest(permissions: &[String]) -> Manifest {
    let asked = v1::Manifest {
        name: "p".into(),
        version: "1.0.0".into(),
        protocol_version: 1,
        permissions: permissions
            .iter()
            .map(|n| v1::Permission {
                name: n.clone(),
                reason: "test".into(),
            })
            .collect(),
        ..Default::default()
    };
    Manifest::from_proto(asked, 1).expect("valid manifest")
}

/// `message` with `authorization: Bearer <token>`.
pub fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    request
}

pub fn get(key: &str) -> v1::KvGetRequest {
    v1::KvGetRequest {
        namespace: String::new(),
        key: key.into(),
    }
}

pub fn set(key: &str, value: &[u8]) -> v1::KvSetRequest {
    v1::KvSetRequest {
        namespace: String::new(),
        key: key.into(),
        value: value.to_vec(),
        ttl: None,
    }
}
