//! The token (§7): a call without it, or with a wrong one, fails with
//! UNAUTHENTICATED.

use outboard_host::CallError;
use outboard_host::launch::channel::TokenInterceptor;
use outboard_host::launch::{Deadline, describe_request};
use outboard_proto::v1;
use outboard_proto::v1::plugin_service_client::PluginServiceClient;
use tonic::service::Interceptor as _;

use crate::check::{Check, CheckName};
use crate::subject::Subject;

/// Calls `Describe` on the plain channel, without a token and then with a
/// wrong one.
pub(crate) async fn check(subject: &Subject<'_>) -> Check {
    Check::of(CheckName::TokenRequired, required(subject).await)
}

async fn required(subject: &Subject<'_>) -> Result<String, String> {
    let wrong = TokenInterceptor::new(&format!("{}x", subject.launched.token()))
        .map_err(|e| format!("cannot build the wrong token: {e}"))?;
    for (what, token) in [
        ("without a token", None),
        ("with a wrong token", Some(wrong)),
    ] {
        let mut client = PluginServiceClient::with_interceptor(
            subject.raw.clone(),
            move |request| match &token {
                Some(token) => token.clone().call(request),
                None => Ok(request),
            },
        );
        let deadline = Deadline::after(subject.timeout);
        let result = subject
            .launched
            .guard()
            .call(
                deadline,
                client.describe(deadline.request(describe_request())),
            )
            .await;
        expect_unauthenticated(what, result)?;
    }
    Ok("UNAUTHENTICATED without a token and with a wrong one".to_owned())
}

fn expect_unauthenticated(
    what: &str,
    result: Result<v1::DescribeResponse, CallError>,
) -> Result<(), String> {
    match result {
        Err(CallError::Unauthenticated(_)) => Ok(()),
        Ok(_) => Err(format!(
            "Describe {what} succeeded; it must fail with UNAUTHENTICATED (§7)"
        )),
        Err(e) => Err(format!(
            "Describe {what} failed: {e}; expected UNAUTHENTICATED (§7)"
        )),
    }
}
