//! Patches: ordered set / remove operations on a JSON context at RFC 6901
//! JSON Pointers. The host applies them; SDKs build them; both share these
//! rules so that a patch means the same on either side.
//!
//! - `set` creates missing parent objects; into an array it takes an index
//!   (replace) or `-` (append).
//! - `remove` of something absent is not an error (it is already gone).
//! - The empty pointer (the whole context) is refused: a plugin patches the
//!   context, it does not replace it.
//! - A set that would nest the context deeper than
//!   [`MAX_NESTING`](crate::json::MAX_NESTING) protobuf levels is refused:
//!   the next plugin could not decode the context, and would be blamed.
//! - Applying is all-or-nothing: on error the target is left unchanged.

use serde_json::Value;

use crate::json::{MAX_NESTING, json_to_value, value_to_json};
use crate::v1;

mod apply;
mod merge;
mod pointer;

#[cfg(test)]
use apply::apply_all_to_copy;
pub use apply::{apply, apply_all};
pub use merge::{Conflict, merge};
pub use pointer::Pointer;

/// The deepest a patch may write: a set can place a value no deeper than
/// the nesting limit allows ([`MAX_NESTING`], three levels per object), so
/// a longer pointer is refused before anything is walked. Every set is
/// also held to the limit itself, value included (see [`apply`]).
pub const MAX_DEPTH: usize = MAX_NESTING / 3;

/// One patch operation.
#[derive(Debug, Clone, PartialEq)]
pub enum PatchOp {
    /// Set the value at the pointer, creating parent objects as needed.
    Set {
        /// Where.
        path: Pointer,
        /// The new value.
        value: Value,
    },
    /// Remove the value at the pointer, if present.
    Remove {
        /// Where.
        path: Pointer,
    },
}

impl PatchOp {
    /// A set operation; fails only if `path` is not a valid pointer.
    pub fn set(path: &str, value: impl Into<Value>) -> Result<PatchOp, PatchError> {
        Ok(PatchOp::Set {
            path: Pointer::parse(path)?,
            value: value.into(),
        })
    }

    /// A remove operation; fails only if `path` is not a valid pointer.
    pub fn remove(path: &str) -> Result<PatchOp, PatchError> {
        Ok(PatchOp::Remove {
            path: Pointer::parse(path)?,
        })
    }

    /// The pointer the operation writes to.
    pub fn path(&self) -> &Pointer {
        match self {
            PatchOp::Set { path, .. } | PatchOp::Remove { path } => path,
        }
    }

    /// The operation's wire form.
    pub fn to_proto(&self) -> v1::PatchOperation {
        match self {
            PatchOp::Set { path, value } => v1::PatchOperation {
                op: v1::PatchOp::Set as i32,
                path: path.to_string(),
                value: Some(json_to_value(value)),
            },
            PatchOp::Remove { path } => v1::PatchOperation {
                op: v1::PatchOp::Remove as i32,
                path: path.to_string(),
                value: None,
            },
        }
    }

    /// Reads an operation off the wire; an unknown or unset op kind is an
    /// error, since half-applying a patch is worse than refusing it.
    pub fn from_proto(op: &v1::PatchOperation) -> Result<PatchOp, PatchError> {
        let path = Pointer::parse(&op.path)?;
        match v1::PatchOp::try_from(op.op) {
            Ok(v1::PatchOp::Set) => Ok(PatchOp::Set {
                path,
                value: op.value.as_ref().map_or(Value::Null, value_to_json),
            }),
            Ok(v1::PatchOp::Remove) => Ok(PatchOp::Remove { path }),
            _ => Err(PatchError::UnknownOp {
                path: op.path.clone(),
                op: op.op,
            }),
        }
    }
}

/// Reads a whole patch off the wire.
pub fn from_proto(ops: &[v1::PatchOperation]) -> Result<Vec<PatchOp>, PatchError> {
    ops.iter().map(PatchOp::from_proto).collect()
}

/// Why a patch could not be read or applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// A path is not a JSON Pointer.
    #[error("path {path:?} is not a valid JSON Pointer: {why}")]
    InvalidPath {
        /// The path as sent.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// An operation's kind is neither set nor remove.
    #[error(
        "operation at {path:?} has unknown kind {op} (expected PATCH_OP_SET or PATCH_OP_REMOVE)"
    )]
    UnknownOp {
        /// The operation's path.
        path: String,
        /// The kind as sent.
        op: i32,
    },
    /// A set goes through a value that is not an object or an array.
    #[error("cannot set {path}: {at} is {kind}, not an object or array")]
    NotAContainer {
        /// The operation's path.
        path: String,
        /// The prefix of the path where the scalar is.
        at: String,
        /// The JSON type found there.
        kind: &'static str,
    },
    /// A token into an array is not an index it has (or `-`).
    #[error("cannot set {path}: {token:?} is not an index into the array at {at} (length {len})")]
    BadIndex {
        /// The operation's path.
        path: String,
        /// The prefix of the path where the array is.
        at: String,
        /// The token that is not an index.
        token: String,
        /// The array's length.
        len: usize,
    },
    /// A set would nest the context deeper than a plugin can decode.
    #[error("cannot set {path}: {why}")]
    TooDeep {
        /// The operation's path.
        path: String,
        /// Where the value goes past the limit.
        why: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(super) fn ops(list: &[(&str, Option<Value>)]) -> Vec<PatchOp> {
        list.iter()
            .map(|(p, v)| match v {
                Some(v) => PatchOp::set(p, v.clone()).expect("valid"),
                None => PatchOp::remove(p).expect("valid"),
            })
            .collect()
    }

    #[test]
    fn set_creates_parents_and_remove_deletes() {
        let mut ctx = json!({"env": {"A": "1"}});
        let patch = ops(&[
            ("/env/B", Some(json!("2"))),
            ("/metadata/timing/start", Some(json!(5))),
            ("/env/A", None),
            ("/absent/thing", None),
        ]);
        apply(&mut ctx, &patch).expect("applies");
        assert_eq!(
            ctx,
            json!({"env": {"B": "2"}, "metadata": {"timing": {"start": 5}}})
        );
    }

    #[test]
    fn arrays_take_indices_and_dash() {
        let mut ctx = json!({"args": ["a", "b"]});
        apply(
            &mut ctx,
            &ops(&[
                ("/args/0", Some(json!("z"))),
                ("/args/-", Some(json!("c"))),
                ("/args/1", None),
            ]),
        )
        .expect("applies");
        assert_eq!(ctx, json!({"args": ["z", "c"]}));
        let err = apply(&mut ctx, &ops(&[("/args/07", Some(json!(1)))])).expect_err("bad index");
        assert!(err.to_string().contains("\"07\" is not an index"), "{err}");
    }

    #[test]
    fn failure_leaves_context_unchanged() {
        let mut ctx = json!({"env": "not an object"});
        let before = ctx.clone();
        let err = apply(
            &mut ctx,
            &ops(&[("/ok", Some(json!(1))), ("/env/X", Some(json!(1)))]),
        )
        .expect_err("env is a string");
        assert_eq!(
            err.to_string(),
            "cannot set /env/X: /env is a string, not an object or array"
        );
        assert_eq!(ctx, before);
    }

    #[test]
    fn apply_all_names_the_failing_writer_and_changes_nothing() {
        let mut ctx = json!({"env": "flat"});
        let a = ops(&[("/a", Some(json!(1)))]);
        let b = ops(&[("/env/X", Some(json!(1)))]);
        let (writer, err) = apply_all(&mut ctx, &[&a, &b]).expect_err("b fails");
        assert_eq!(writer, 1);
        assert!(matches!(err, PatchError::NotAContainer { .. }));
        assert_eq!(ctx, json!({"env": "flat"}));
        apply_all(&mut ctx, &[&a]).expect("a applies");
        assert_eq!(ctx, json!({"env": "flat", "a": 1}));
    }

    #[test]
    fn pointers_deeper_than_the_cap_are_refused() {
        let ok = "/a".repeat(MAX_DEPTH);
        assert_eq!(
            Pointer::parse(&ok).expect("at the cap").tokens().len(),
            MAX_DEPTH
        );
        let err = Pointer::parse(&"/a".repeat(MAX_DEPTH + 1)).expect_err("too deep");
        assert!(err.to_string().contains("33 levels deep"), "{err}");
    }

    #[test]
    fn sets_that_would_nest_the_context_too_deep_are_refused_and_change_nothing() {
        fn objects(n: usize) -> Value {
            (0..n).fold(json!(1), |v, _| json!({"k": v}))
        }
        // A scalar 32 objects down is at level 96, the limit.
        let mut ctx = json!({"a": {"b": [[{"c": 1}]]}});
        let before = ctx.clone();
        apply(&mut ctx, &ops(&[("/new", Some(objects(31)))])).expect("at the limit");
        apply(&mut ctx, &ops(&[("/x/y/z", Some(objects(29)))])).expect("at the limit");
        // Through existing arrays (two levels each) and objects (three).
        apply(&mut ctx, &ops(&[("/a/b/0/0/c", Some(objects(27)))])).expect("at the limit");
        let mut ctx = before.clone();
        for (path, value) in [
            ("/new", objects(32)),
            ("/x/y/z", objects(30)),
            ("/a/b/0/0/c", objects(28)),
            ("/a/b/0/-", objects(29)),
        ] {
            let patch = ops(&[("/first", Some(json!(1))), (path, Some(value))]);
            let err = apply(&mut ctx, &patch).expect_err("too deep");
            assert!(
                matches!(&err, PatchError::TooDeep { path: p, .. } if p == path),
                "{err}"
            );
            assert!(err.to_string().contains("nested too deep"), "{err}");
            assert_eq!(ctx, before);
        }
        let err = apply(&mut ctx, &ops(&[("/s", Some(objects(32)))])).expect_err("deep");
        assert_eq!(
            err.to_string(),
            format!(
                "cannot set /s: /s{} is nested too deep: more than 96 protobuf message \
                 levels (an object costs 3, an array 2), more than a plugin can decode",
                "/k".repeat(31)
            )
        );
    }

    #[test]
    fn pointers_escape_and_overlap() {
        let p = Pointer::parse("/a~1b/c~0d").expect("valid");
        assert_eq!(p.tokens(), ["a/b", "c~d"]);
        assert_eq!(p.to_string(), "/a~1b/c~0d");
        let env = Pointer::parse("/env").expect("valid");
        let env_a = Pointer::parse("/env/A").expect("valid");
        let envx = Pointer::parse("/envx").expect("valid");
        assert!(env.overlaps(&env_a) && env_a.overlaps(&env));
        assert!(!env.overlaps(&envx));
        assert!(Pointer::parse("").is_err());
        assert!(Pointer::parse("env").is_err());
        assert!(Pointer::parse("/a~2").is_err());
    }

    #[test]
    fn wire_round_trip_and_unknown_op() {
        let patch = ops(&[("/env/X", Some(json!({"n": 1}))), ("/y", None)]);
        let wire: Vec<_> = patch.iter().map(PatchOp::to_proto).collect();
        assert_eq!(from_proto(&wire).expect("reads back"), patch);
        let unknown = v1::PatchOperation {
            op: 9,
            path: "/x".into(),
            value: None,
        };
        assert_eq!(
            from_proto(&[unknown]),
            Err(PatchError::UnknownOp {
                path: "/x".into(),
                op: 9
            })
        );
    }

    /// Serialized, so that key order counts too.
    fn text(v: &Value) -> String {
        serde_json::to_string(v).expect("serializes")
    }

    #[test]
    fn a_failure_takes_back_every_kind_of_change() {
        let ctx = json!({
            "env": {"A": "1", "B": "2"},
            "args": ["a", "b", "c"],
            "m": {"x": {"y": 1}},
            "flat": true
        });
        let patch = ops(&[
            ("/env/A", Some(json!("replaced"))),
            ("/env/B", None),
            ("/env/NEW", Some(json!("added"))),
            ("/new/deep/er", Some(json!(1))),
            ("/m/x/z/w", Some(json!(2))),
            ("/args/1", Some(json!("B"))),
            ("/args/0", None),
            ("/args/-", Some(json!("d"))),
            ("/args/5", None),
            ("/m/x", Some(json!("scalar now"))),
            ("/nothing/here", None),
            ("/flat/x", Some(json!(1))),
            ("/never/applied", Some(json!(1))),
        ]);
        let mut target = ctx.clone();
        let err = apply(&mut target, &patch).expect_err("flat is a boolean");
        assert_eq!(
            err.to_string(),
            "cannot set /flat/x: /flat is a boolean, not an object or array"
        );
        assert_eq!(text(&target), text(&ctx));
    }

    #[test]
    fn a_failing_index_after_array_changes_leaves_the_array() {
        let ctx = json!({"args": ["a", "b"]});
        let mut target = ctx.clone();
        let err = apply(
            &mut target,
            &ops(&[("/args/0", None), ("/args/1", Some(json!("x")))]),
        )
        .expect_err("one item left");
        assert!(err.to_string().contains("(length 1)"), "{err}");
        assert_eq!(target, ctx);
    }

    #[test]
    fn removes_after_the_last_set_and_remove_only_patches_apply() {
        let mut ctx = json!({"a": 1, "b": [1, 2], "c": {"d": 1}});
        apply(
            &mut ctx,
            &ops(&[("/c/e", Some(json!(2))), ("/a", None), ("/b/0", None)]),
        )
        .expect("applies");
        assert_eq!(ctx, json!({"b": [2], "c": {"d": 1, "e": 2}}));
        apply(
            &mut ctx,
            &ops(&[("/c/d", None), ("/x/y", None), ("/b/9", None)]),
        )
        .expect("removes never fail");
        assert_eq!(ctx, json!({"b": [2], "c": {"e": 2}}));
        apply(&mut ctx, &[]).expect("nothing to do");
        assert_eq!(ctx, json!({"b": [2], "c": {"e": 2}}));
    }

    #[test]
    fn apply_all_takes_back_earlier_writers() {
        let ctx = json!({"env": {"A": "1"}, "args": ["a"]});
        let a = ops(&[("/env/A", None), ("/args/-", Some(json!("b")))]);
        let b = ops(&[
            ("/metadata/b/x", Some(json!(1))),
            ("/args/1/x", Some(json!(1))),
        ]);
        let mut target = ctx.clone();
        let (writer, err) = apply_all(&mut target, &[&a, &b]).expect_err("args/1 is a string");
        assert_eq!(writer, 1);
        assert_eq!(
            err.to_string(),
            "cannot set /args/1/x: /args/1 is a string, not an object or array"
        );
        assert_eq!(text(&target), text(&ctx));
    }

    /// A small deterministic generator for the differential test.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((self.0 >> 33) % n as u64) as usize
        }
    }

    #[test]
    fn in_place_apply_matches_applying_to_a_copy() {
        let ctx = json!({
            "env": {"A": "1", "B": "2", "C": "3"},
            "args": ["a", "b", "c"],
            "m": {"x": {"y": [1, {"z": 2}]}, "n": null},
            "s": "str"
        });
        let paths = [
            "/env",
            "/env/A",
            "/env/B",
            "/env/D",
            "/args",
            "/args/0",
            "/args/1",
            "/args/2",
            "/args/3",
            "/args/-",
            "/args/01",
            "/m",
            "/m/x",
            "/m/x/y",
            "/m/x/y/0",
            "/m/x/y/1",
            "/m/x/y/1/z",
            "/m/x/y/-",
            "/m/n",
            "/m/n/k",
            "/s",
            "/s/k",
            "/new",
            "/new/a/b",
        ];
        let values = [
            json!(1),
            json!("v"),
            json!({}),
            json!([]),
            json!({"k": [1]}),
        ];
        let mut rng = Lcg(7);
        let (mut failed, mut applied) = (0, 0);
        for _ in 0..3000 {
            let writers: Vec<Vec<PatchOp>> = (0..1 + rng.below(3))
                .map(|_| {
                    (0..rng.below(6))
                        .map(|_| {
                            let path = paths[rng.below(paths.len())];
                            if rng.below(3) == 0 {
                                PatchOp::remove(path).expect("valid")
                            } else {
                                let value = values[rng.below(values.len())].clone();
                                PatchOp::set(path, value).expect("valid")
                            }
                        })
                        .collect()
                })
                .collect();
            let refs: Vec<&[PatchOp]> = writers.iter().map(Vec::as_slice).collect();
            let mut in_place = ctx.clone();
            let mut copied = ctx.clone();
            let got = apply_all(&mut in_place, &refs);
            let want = apply_all_to_copy(&mut copied, &refs);
            assert_eq!(got, want, "{writers:?}");
            assert_eq!(text(&in_place), text(&copied), "{writers:?}");
            if got.is_err() {
                assert_eq!(text(&in_place), text(&ctx), "{writers:?}");
                failed += 1;
            } else {
                applied += 1;
            }
        }
        // Both outcomes are exercised often.
        assert!(
            failed > 300 && applied > 300,
            "{failed} failed, {applied} applied"
        );
    }

    #[test]
    fn pointers_print_escapes_between_plain_runs() {
        for path in ["/a", "/~0", "/~1", "/a~0b~1c/~1~0/", "/x/", "/é~1ü/~0~0"] {
            let p = Pointer::parse(path).expect("valid");
            assert_eq!(p.to_string(), path);
        }
        let p = Pointer::parse("/a~0b~1c/~1~0/").expect("valid");
        assert_eq!(p.tokens(), ["a~b/c", "/~", ""]);
        assert!(Pointer::parse("/ok/~").is_err());
    }
}
