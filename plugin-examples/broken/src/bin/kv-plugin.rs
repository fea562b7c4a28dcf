//! A plugin that calls back into the host's key-value store when invoked,
//! for the tests of host services with a real daemon.
//!
//! It subscribes to the phase `kv` and asks for the permission `kv`. The
//! context's `/kv` object says what to do, and the answer goes into the
//! patch beside it:
//!
//! ```json
//! {"kv": {"op": "set", "key": "k", "value": "v"}}   // → /kv/done = true
//! {"kv": {"op": "get", "key": "k"}}                 // → /kv/found, /kv/value
//! {"kv": {"op": "count"}}                           // → /kv/count: keys listed
//! ```
//!
//! A host-service error fails the call with INTERNAL, quoting the status.
//! It reads `OUTBOARD_HOST_SOCKET` and `OUTBOARD_HOST_TOKEN` before the SDK
//! takes the `OUTBOARD_*` variables out of the environment.

use std::process::ExitCode;

use hyper_util::rt::TokioIo;
use outboard_plugin::{Config, Invocation, Manifest, Plugin, PluginError, Reply};
use outboard_proto::v1;
use outboard_proto::v1::host_service_client::HostServiceClient;
use serde_json::Value;
use tokio::sync::OnceCell;
use tonic::transport::{Channel, Endpoint, Uri};

struct KvPlugin {
    name: String,
    /// `OUTBOARD_HOST_SOCKET` and `OUTBOARD_HOST_TOKEN`, if set.
    host: Option<(String, String)>,
    /// One connection, made at the first call.
    client: OnceCell<HostServiceClient<Channel>>,
}

impl Plugin for KvPlugin {
    fn manifest(&self) -> Manifest {
        Manifest::new(&self.name, "0.1.0")
            .describe("Reads and writes the host's key-value store when invoked")
            .subscribe("kv", 0)
            .permission("kv", "keeps what it is asked to keep")
    }

    async fn configure(&self, _config: Config) -> Result<(), PluginError> {
        if self.host.is_none() {
            return Err(PluginError::failed_precondition(
                "needs host services: OUTBOARD_HOST_SOCKET is not set",
            ));
        }
        // One connection, kept (§17.1), made now so that a host socket
        // that does not answer fails the start rather than the first call.
        self.client().await.map(|_| ())
    }

    async fn invoke(&self, invocation: Invocation) -> Result<Reply, PluginError> {
        let text = |pointer: &str| {
            invocation
                .get(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (op, key, value) = (text("/kv/op"), text("/kv/key"), text("/kv/value"));
        if !["set", "get", "count"].contains(&op.as_str()) {
            return Err(PluginError::invalid_context(format!(
                "/kv/op: {op:?} is not set, get or count"
            )));
        }
        let mut client = self.client().await?.clone();
        let failed = |e: tonic::Status| PluginError::internal(format!("{op}: {e}"));
        match op.as_str() {
            "set" => {
                let request = v1::KvSetRequest {
                    key,
                    value: value.into_bytes(),
                    ..Default::default()
                };
                client.kv_set(self.authed(request)).await.map_err(failed)?;
                Ok(Reply::ok().set("/kv/done", Value::Bool(true)))
            }
            "get" => {
                let request = v1::KvGetRequest {
                    key,
                    ..Default::default()
                };
                let got = client
                    .kv_get(self.authed(request))
                    .await
                    .map_err(failed)?
                    .into_inner();
                Ok(Reply::ok().set("/kv/found", Value::Bool(got.found)).set(
                    "/kv/value",
                    Value::String(String::from_utf8_lossy(&got.value).into_owned()),
                ))
            }
            // "count", the one op left.
            _ => {
                let count = self.count(&mut client).await.map_err(failed)?;
                Ok(Reply::ok().set("/kv/count", Value::from(count)))
            }
        }
    }
}

impl KvPlugin {
    /// The client, connected at the first call.
    async fn client(&self) -> Result<&HostServiceClient<Channel>, PluginError> {
        let Some((socket, _)) = &self.host else {
            return Err(PluginError::failed_precondition(
                "OUTBOARD_HOST_SOCKET is not set",
            ));
        };
        self.client
            .get_or_try_init(|| async {
                let socket = socket.clone();
                let channel = Endpoint::from_static("http://outboard.host")
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let socket = socket.clone();
                        async move {
                            tokio::net::UnixStream::connect(socket)
                                .await
                                .map(TokioIo::new)
                        }
                    }))
                    .await
                    .map_err(|e| {
                        PluginError::internal(format!("cannot connect to the host socket: {e}"))
                    })?;
                Ok(HostServiceClient::new(channel))
            })
            .await
    }

    /// `message` with the host token.
    fn authed<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some((_, token)) = &self.host
            && let Ok(value) = format!("Bearer {token}").parse()
        {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }

    /// Every key of its namespace, counted a page at a time.
    async fn count(&self, client: &mut HostServiceClient<Channel>) -> Result<u64, tonic::Status> {
        let mut count = 0;
        let mut page_token = String::new();
        loop {
            let request = v1::KvListRequest {
                page_size: 1000,
                page_token,
                keys_only: true,
                ..Default::default()
            };
            let page = client.kv_list(self.authed(request)).await?.into_inner();
            count += page.entries.len() as u64;
            if page.next_page_token.is_empty() {
                return Ok(count);
            }
            page_token = page.next_page_token;
        }
    }
}

fn main() -> ExitCode {
    let name = std::env::var("OUTBOARD_PLUGIN_NAME").unwrap_or_else(|_| "kv".to_owned());
    let host = std::env::var("OUTBOARD_HOST_SOCKET")
        .ok()
        .zip(std::env::var("OUTBOARD_HOST_TOKEN").ok());
    outboard_plugin::run(KvPlugin {
        name,
        host,
        client: OnceCell::new(),
    })
}
