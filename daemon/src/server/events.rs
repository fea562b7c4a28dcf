//! The control API's event RPCs (`Emit`, `ListDeadLetters`,
//! `RetryDeadLetter`) and `RecordJob`'s `job.finished`, over host
//! services' events.

use std::sync::Arc;

use outboard_proto::control::v1 as wire;
use outboard_proto::json::value_to_json;
use outboard_services::events::Events;
use serde_json::json;
use tonic::Status;

use crate::wire::timestamp;

/// Dead letters per page when the request says 0.
const DEFAULT_PAGE: usize = 100;
/// The most dead letters per page.
const MAX_PAGE: usize = 1000;

/// The events, or `FAILED_PRECONDITION` for a daemon without them.
pub(super) fn events(events: Option<&Arc<Events>>) -> Result<&Arc<Events>, Status> {
    events.ok_or_else(|| {
        Status::failed_precondition("this daemon runs without host services, so without events")
    })
}

/// `Emit`: the operator's event, stored before the answer.
pub(super) async fn emit(
    events: &Events,
    request: wire::EmitRequest,
) -> Result<wire::EmitResponse, Status> {
    let payload = request
        .payload
        .as_ref()
        .map(value_to_json)
        .unwrap_or_default();
    let event_id = events.emit(&request.name, &payload).await?;
    Ok(wire::EmitResponse { event_id })
}

/// `ListDeadLetters`: a page, the token being the last id seen.
pub(super) async fn list(
    events: &Events,
    request: wire::ListDeadLettersRequest,
) -> Result<wire::ListDeadLettersResponse, Status> {
    let size = match usize::try_from(request.page_size) {
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "page_size: negative ({})",
                request.page_size
            )));
        }
        Ok(0) => DEFAULT_PAGE,
        Ok(n) => n.min(MAX_PAGE),
    };
    let after = parse_id("page_token", &request.page_token, 0)?;
    let letters = events.dead_letters(after, size).await?;
    let next_page_token = match letters.last() {
        Some(last) if letters.len() == size => last.id.to_string(),
        _ => String::new(),
    };
    Ok(wire::ListDeadLettersResponse {
        dead_letters: letters
            .into_iter()
            .map(|d| wire::DeadLetter {
                id: d.id.to_string(),
                event_id: d.event_id,
                event: d.event,
                subscriber: d.subscriber,
                attempts: d.attempts,
                last_error: d.last_error,
                time: Some(timestamp(d.time)),
            })
            .collect(),
        next_page_token,
    })
}

/// `RetryDeadLetter`: one by id (`NOT_FOUND` if none), or all.
pub(super) async fn retry(
    events: &Events,
    request: wire::RetryDeadLetterRequest,
) -> Result<wire::RetryDeadLetterResponse, Status> {
    use wire::retry_dead_letter_request::Target;
    let id = match request.target {
        Some(Target::Id(id)) if id.is_empty() => {
            return Err(Status::invalid_argument(
                "id: empty; give a dead letter's id",
            ));
        }
        Some(Target::Id(id)) => Some(parse_id("id", &id, 0)?),
        Some(Target::All(true)) => None,
        Some(Target::All(false)) | None => {
            return Err(Status::invalid_argument(
                "target: give a dead letter's id, or all = true",
            ));
        }
    };
    let retried = events.retry_dead(id).await?;
    if let (Some(id), 0) = (id, retried) {
        return Err(Status::not_found(format!(
            "no dead letter {id}; `outboard events --dead` lists them"
        )));
    }
    Ok(wire::RetryDeadLetterResponse {
        retried: u32::try_from(retried).unwrap_or(u32::MAX),
    })
}

/// `job.finished` for a job recorded by `outboard run --daemon`.
pub(super) async fn job_finished(events: &Events, request: &wire::RecordJobRequest, result: &str) {
    let duration_ms = request.duration.as_ref().map_or(0, |d| {
        d.seconds
            .saturating_mul(1000)
            .saturating_add(i64::from(d.nanos / 1_000_000))
    });
    let job: String = request.job_id.chars().take(64).collect();
    let payload = json!({
        "job": job,
        "command": request.command,
        "status": result,
        "exit_code": request.exit_code,
        "duration_ms": duration_ms,
    });
    events.publish_host("job.finished", payload).await;
}

/// A dead letter id or page token: a non-negative decimal; `empty` when
/// blank.
fn parse_id(field: &str, text: &str, empty: i64) -> Result<i64, Status> {
    if text.is_empty() {
        return Ok(empty);
    }
    text.parse::<i64>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| {
            Status::invalid_argument(format!("{field}: {text:?} is not a dead letter id"))
        })
}
