//! The battery: every check, in order, as a sequence of named steps.

use outboard_host::Manifest;
use outboard_host::launch::Launched;

use crate::check::{Check, CheckName};
use crate::checks::{
    configure, deadline, describe, fastpath, handshake, health, host_services, invoke, run_by_hand,
    shutdown, sigterm, socket, token, unknown_fields,
};
use crate::probe::manifest_name;
use crate::subject::Subject;
use crate::{Options, Setting};

/// Runs every check against the plugin, in order. Leaves no process and no
/// runtime directory behind.
pub async fn run(options: &Options) -> Vec<Check> {
    let mut results = Results::default();
    results.record(CheckName::RunByHand, run_by_hand::check(options).await);
    let named;
    let options = match options.setting {
        Setting::Configured => options,
        Setting::Command { .. } => match named_by_manifest(options).await {
            Ok(renamed) => {
                named = renamed;
                &named
            }
            Err(check) => {
                // The first launch is the handshake check's: it failed.
                results.record(CheckName::Handshake, check);
                results.block_the_rest("no handshake");
                results.record(CheckName::Sigterm, sigterm::check(options).await);
                results.record(
                    CheckName::HostServices,
                    Check::blocked(CheckName::HostServices, "no handshake"),
                );
                return results.checks;
            }
        },
    };
    match handshake::check(options).await {
        (check, Some(launched)) => {
            results.record(CheckName::Handshake, check);
            if let Err(why) = on_one_launch(options, &launched, &mut results).await {
                results.block_the_rest(why);
            }
            launched.kill().await;
        }
        (check, None) => {
            results.record(CheckName::Handshake, check);
            results.block_the_rest("no handshake");
        }
    }
    results.record(CheckName::Sigterm, sigterm::check(options).await);
    results.record(CheckName::HostServices, host_services::check(options).await);
    results.checks
}

/// `options` with the plugin named after its manifest, for a command line:
/// a first launch asks the name, so that `OUTBOARD_PLUGIN_NAME` and
/// `Configure` agree on it (PROTOCOL.md §2.1). A plugin that shakes hands
/// but does not describe itself keeps the command's name (the describe
/// check says why); one that does not shake hands fails the handshake
/// check, given as the `Err`.
async fn named_by_manifest(options: &Options) -> Result<Options, Check> {
    let launched = match handshake::check(options).await {
        (_, Some(launched)) => launched,
        (check, None) => return Err(check),
    };
    let name = manifest_name(&launched, options.handshake_timeout).await;
    launched.kill().await;
    let mut named = options.clone();
    if let Ok(name) = name {
        named.spec.name = name;
    }
    Ok(named)
}

/// The checks after the handshake, on that one launch. An `Err` says why
/// the rest cannot run.
async fn on_one_launch(
    options: &Options,
    launched: &Launched,
    results: &mut Results,
) -> Result<(), &'static str> {
    results.record(CheckName::SocketPermissions, socket::check(launched));
    let subject = match Subject::connect(launched, options.handshake_timeout).await {
        Ok(subject) => subject,
        Err(e) => {
            results.record(
                CheckName::TokenRequired,
                Check::fail(CheckName::TokenRequired, e),
            );
            return Err("no connection to the socket");
        }
    };
    results.record(CheckName::TokenRequired, token::check(&subject).await);
    let (check, manifest) = describe::check(&subject).await;
    results.record(CheckName::Describe, check);
    let manifest = manifest.ok_or("no valid manifest")?;
    let (check, config) = configure::valid(&subject, &manifest, options).await;
    results.record(CheckName::ConfigureValid, check);
    let config = config.ok_or("not configured")?;
    let check = configure::invalid(&subject, &manifest, options, &config).await;
    results.record(CheckName::ConfigureInvalid, check);
    results.record(CheckName::Health, health::check(&subject).await);
    invocations(&subject, &manifest, results).await;
    fast_path(&subject, &manifest, results).await;
    results.record(CheckName::Shutdown, shutdown::check(&subject).await);
    Ok(())
}

/// `Invoke` on every subscribed phase, then an unknown field and a short
/// deadline on the first; none of them applies to a plugin without
/// subscriptions.
async fn invocations(subject: &Subject<'_>, manifest: &Manifest, results: &mut Results) {
    let Some(first) = manifest.subscriptions.first() else {
        for name in [
            CheckName::Invoke,
            CheckName::UnknownFields,
            CheckName::Deadline,
        ] {
            results.record(name, Check::not_applicable(name, "no subscriptions"));
        }
        return;
    };
    for subscription in &manifest.subscriptions {
        let check = invoke::check(subject, &subscription.phase).await;
        results.record(CheckName::Invoke, check);
    }
    let check = unknown_fields::check(subject, &first.phase).await;
    results.record(CheckName::UnknownFields, check);
    let check = deadline::check(subject, &first.phase).await;
    results.record(CheckName::Deadline, check);
}

/// The fast path's checks, when the launch offered it and the plugin lists
/// it; skipped, saying why, when not.
async fn fast_path(subject: &Subject<'_>, manifest: &Manifest, results: &mut Results) {
    let offered = fastpath::offered(&manifest.features, subject.launched.fastpath_socket());
    let checks = match offered {
        Ok(socket) => {
            let plugin = fastpath::Launched::new(subject, socket);
            let phase = manifest.subscriptions.first().map(|s| s.phase.as_str());
            fastpath::run(&plugin, phase).await
        }
        Err(why) => fastpath::skipped(&why),
    };
    for (name, check) in checks {
        results.record(name, check);
    }
}

/// The checks so far, and which have run.
#[derive(Debug, Default)]
struct Results {
    /// Every result, in order.
    checks: Vec<Check>,
    /// The checks that have a result.
    done: Vec<CheckName>,
}

impl Results {
    /// Records `check`, the result of the check `name`.
    fn record(&mut self, name: CheckName, check: Check) {
        self.checks.push(check);
        if !self.done.contains(&name) {
            self.done.push(name);
        }
    }

    /// Records every check of the one launch without a result as blocked,
    /// because of `why`.
    fn block_the_rest(&mut self, why: &str) {
        for name in CheckName::ON_ONE_LAUNCH {
            if !self.done.contains(&name) {
                self.record(name, Check::blocked(name, why));
            }
        }
    }
}
