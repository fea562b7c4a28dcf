//! Patch apply / merge and Struct <-> JSON conversion on a job-like context:
//! the work the host does per plugin call in a phase.
//!
//! ```sh
//! cargo bench -p outboard-proto --bench patch -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use outboard_proto::json::{json_to_struct, struct_to_json};
use outboard_proto::patch::{self, PatchOp, Pointer};
use serde_json::{Map, Value, json};

/// A context as `outboard run` builds it, after a few phases: job id,
/// argv, 20 environment variables, metadata with a few nested objects.
fn job_context() -> Value {
    let mut env = Map::new();
    for (k, v) in [
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ),
        ("HOME", "/home/runner"),
        ("USER", "runner"),
        ("SHELL", "/bin/bash"),
        ("LANG", "C.UTF-8"),
        ("TERM", "xterm-256color"),
        ("PWD", "/srv/jobs/nightly-etl"),
        ("TZ", "UTC"),
        ("HOSTNAME", "worker-7f9c4d"),
        ("LOGNAME", "runner"),
        ("TMPDIR", "/tmp"),
        ("XDG_RUNTIME_DIR", "/run/user/1000"),
        ("RUST_LOG", "info"),
        ("PYTHONUNBUFFERED", "1"),
        ("JOB_QUEUE", "batch-high"),
        ("DATA_BUCKET", "s3://example-data/etl/2026-11-22"),
        ("DB_HOST", "db.internal.example"),
        ("DB_PORT", "5432"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
        ("CI", "false"),
    ] {
        env.insert(k.to_owned(), Value::String(v.to_owned()));
    }
    json!({
        "job_id": "6f1c2a9e-3b7d-4c1e-9a55-0d2b8e4f7a10",
        "command": ["python3", "-m", "etl.nightly", "--date", "2026-11-22", "--verbose"],
        "env": env,
        "metadata": {
            "timing": {"queued_at": 1_795_300_000_123_u64, "started_at": 1_795_300_004_567_u64},
            "resources": {"memory_mb": 16384, "cpus": 8, "limits": {"memory": "16Gi", "cpus": 8.0}},
            "labels": {"team": "data", "tier": "batch", "owner": "etl@example.com"},
            "audit": {"user": "alice", "source": "cron", "request_id": "req-8841"}
        },
        "dry_run": false
    })
}

fn set(path: &str, value: Value) -> PatchOp {
    PatchOp::set(path, value).expect("valid pointer")
}

fn remove(path: &str) -> PatchOp {
    PatchOp::remove(path).expect("valid pointer")
}

/// A patch of `n` operations (1, 5 or 20) of the kinds plugins send:
/// environment variables set and removed, metadata written, argv appended.
fn job_patch(n: usize) -> Vec<PatchOp> {
    let pool = vec![
        set("/env/INJECTED_TOKEN", json!("tok-abc123")),
        set("/metadata/timer/start_ns", json!(1_795_300_004_567_000_u64)),
        remove("/env/CI"),
        set(
            "/env/PATH",
            json!("/opt/tools/bin:/usr/local/bin:/usr/bin:/bin"),
        ),
        set("/command/-", json!("--dry-run=false")),
        set("/metadata/resources/limits/memory", json!("8Gi")),
        set("/metadata/labels/cost_center", json!("cc-42")),
        remove("/env/TERM"),
        set("/env/HTTP_PROXY", json!("http://proxy:3128")),
        set("/env/HTTPS_PROXY", json!("http://proxy:3128")),
        set("/env/NO_PROXY", json!("localhost,.internal.example")),
        set(
            "/metadata/policy",
            json!({"allowed": true, "rules": ["no-root", "max-mem"]}),
        ),
        remove("/metadata/audit/request_id"),
        set("/metadata/audit/approved_by", json!("policy-gate")),
        set("/command/1", json!("-X")),
        set("/env/RUST_LOG", json!("debug")),
        remove("/env/TMPDIR"),
        set("/metadata/notify/channels", json!(["#etl", "#oncall"])),
        set("/env/JOB_ATTEMPT", json!("1")),
        set("/metadata/timing/deadline_s", json!(3600)),
    ];
    pool.into_iter().take(n).collect()
}

/// `writers` patches of 2 or 3 operations each, all under
/// `/metadata/<writer>/`: what the plugins of a parallel phase send.
fn parallel_patches(writers: usize) -> Vec<Vec<PatchOp>> {
    (0..writers)
        .map(|w| {
            let mut ops = vec![
                set(&format!("/metadata/plugin-{w}/started"), json!(true)),
                set(
                    &format!("/metadata/plugin-{w}/info/version"),
                    json!("1.4.2"),
                ),
            ];
            if w % 2 == 0 {
                ops.push(remove(&format!("/metadata/plugin-{w}/stale")));
            }
            ops
        })
        .collect()
}

fn bench_apply(c: &mut Criterion) {
    let context = job_context();
    let mut group = c.benchmark_group("apply");
    for n in [1, 5, 20] {
        let ops = job_patch(n);
        group.bench_with_input(BenchmarkId::new("ops", n), &ops, |b, ops| {
            b.iter_batched(
                || context.clone(),
                |mut ctx| {
                    patch::apply(&mut ctx, black_box(ops)).expect("applies");
                    ctx
                },
                BatchSize::SmallInput,
            );
        });
    }
    // All-or-nothing: 19 operations apply, the 20th fails, the context
    // must come back as it was.
    let mut failing = job_patch(19);
    failing.push(set("/dry_run/x", json!(1)));
    group.bench_function("ops/20-last-fails", |b| {
        b.iter_batched(
            || context.clone(),
            |mut ctx| {
                let err = patch::apply(&mut ctx, black_box(&failing));
                (ctx, err)
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn bench_merge(c: &mut Criterion) {
    let mut group = c.benchmark_group("merge");
    let context = job_context();
    for writers in [1, 4, 16, 64] {
        let patches = parallel_patches(writers);
        let refs: Vec<&[PatchOp]> = patches.iter().map(Vec::as_slice).collect();
        group.bench_with_input(BenchmarkId::new("writers", writers), &refs, |b, refs| {
            b.iter(|| patch::merge(&context, black_box(refs)).map(|merged| merged.len()));
        });
    }
    // 16 writers, the last one writing inside the first one's subtree.
    let mut patches = parallel_patches(16);
    patches[15].push(set("/metadata/plugin-0/info/version", json!("2")));
    let refs: Vec<&[PatchOp]> = patches.iter().map(Vec::as_slice).collect();
    group.bench_function("writers/16-conflict", |b| {
        b.iter(|| patch::merge(&context, black_box(&refs)).expect_err("conflict"));
    });
    group.finish();
}

fn bench_apply_all(c: &mut Criterion) {
    let context = job_context();
    let mut group = c.benchmark_group("apply_all");
    for writers in [1, 4, 16, 64] {
        let patches = parallel_patches(writers);
        let refs: Vec<&[PatchOp]> = patches.iter().map(Vec::as_slice).collect();
        group.bench_with_input(BenchmarkId::new("writers", writers), &refs, |b, refs| {
            b.iter_batched(
                || context.clone(),
                |mut ctx| {
                    patch::apply_all(&mut ctx, black_box(refs)).expect("applies");
                    ctx
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

fn bench_json(c: &mut Criterion) {
    let Value::Object(context) = job_context() else {
        unreachable!("the job context is an object")
    };
    let wire = json_to_struct(&context);
    let mut group = c.benchmark_group("json");
    group.bench_function("json_to_struct/job", |b| {
        b.iter(|| json_to_struct(black_box(&context)));
    });
    group.bench_function("struct_to_json/job", |b| {
        b.iter(|| struct_to_json(black_box(&wire)));
    });
    group.finish();
}

/// Reading a plugin's reply: pointers parsed off the wire, and printed back
/// for reports and errors.
fn bench_pointer(c: &mut Criterion) {
    let wire: Vec<_> = job_patch(5).iter().map(PatchOp::to_proto).collect();
    let pointer = Pointer::parse("/metadata/resources/limits/memory").expect("valid");
    let mut group = c.benchmark_group("pointer");
    group.bench_function("parse", |b| {
        b.iter(|| Pointer::parse(black_box("/metadata/resources/limits/memory")));
    });
    group.bench_function("parse/escaped", |b| {
        b.iter(|| Pointer::parse(black_box("/metadata/a~1b/c~0d")));
    });
    group.bench_function("display", |b| {
        b.iter(|| black_box(&pointer).to_string());
    });
    group.bench_function("from_proto/5-ops", |b| {
        b.iter(|| patch::from_proto(black_box(&wire)));
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_apply,
    bench_merge,
    bench_apply_all,
    bench_json,
    bench_pointer
);
criterion_main!(benches);
