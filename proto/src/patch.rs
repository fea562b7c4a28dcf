//! Patches: ordered set / remove operations on a JSON context at RFC 6901
//! JSON Pointers. The host applies them; SDKs build them; both share these
//! rules so that a patch means the same on either side.
//!
//! - `set` creates missing parent objects; into an array it takes an index
//!   (replace) or `-` (append).
//! - `remove` of something absent is not an error (it is already gone).
//! - The empty pointer (the whole context) is refused: a plugin patches the
//!   context, it does not replace it.
//! - Applying is all-or-nothing: on error the target is left unchanged.

use std::fmt;

use serde_json::Value;

use crate::json::{json_to_value, value_to_json};
use crate::v1;

/// A parsed RFC 6901 JSON Pointer with at least one reference token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pointer {
    tokens: Vec<String>,
}

impl Pointer {
    /// Parses `/a/b~1c` into tokens `a`, `b/c`.
    pub fn parse(path: &str) -> Result<Pointer, PatchError> {
        let bad = |why: &str| PatchError::InvalidPath {
            path: path.to_owned(),
            why: why.to_owned(),
        };
        if path.is_empty() {
            return Err(bad("the empty pointer would replace the whole context"));
        }
        let Some(rest) = path.strip_prefix('/') else {
            return Err(bad("a JSON Pointer starts with '/'"));
        };
        let tokens = rest
            .split('/')
            .map(|raw| unescape(raw).ok_or_else(|| bad("'~' must be followed by '0' or '1'")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Pointer { tokens })
    }

    /// The unescaped reference tokens, outermost first.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// True if one pointer is the other or lies inside it: writes to both
    /// cannot be merged without one overriding the other.
    pub fn overlaps(&self, other: &Pointer) -> bool {
        let n = self.tokens.len().min(other.tokens.len());
        self.tokens[..n] == other.tokens[..n]
    }
}

impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in &self.tokens {
            write!(f, "/{}", t.replace('~', "~0").replace('/', "~1"))?;
        }
        Ok(())
    }
}

fn unescape(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// One patch operation.
#[derive(Debug, Clone, PartialEq)]
pub enum PatchOp {
    /// Set the value at the pointer, creating parent objects as needed.
    Set { path: Pointer, value: Value },
    /// Remove the value at the pointer, if present.
    Remove { path: Pointer },
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
    #[error("path {path:?} is not a valid JSON Pointer: {why}")]
    InvalidPath { path: String, why: String },
    #[error(
        "operation at {path:?} has unknown kind {op} (expected PATCH_OP_SET or PATCH_OP_REMOVE)"
    )]
    UnknownOp { path: String, op: i32 },
    #[error("cannot set {path}: {at} is {kind}, not an object or array")]
    NotAContainer {
        path: String,
        at: String,
        kind: &'static str,
    },
    #[error("cannot set {path}: {token:?} is not an index into the array at {at} (length {len})")]
    BadIndex {
        path: String,
        at: String,
        token: String,
        len: usize,
    },
}

/// Two writers whose patches touch the same place: the same path, or one
/// path inside another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// Index of the first writer (in the order given to [`merge`]).
    pub first: usize,
    /// The path the first writer writes.
    pub first_path: Pointer,
    /// Index of the second writer.
    pub second: usize,
    /// The path the second writer writes.
    pub second_path: Pointer,
}

/// Merges the patches of independent writers (plugins that ran in parallel
/// on the same context) into one, in the order given. Operations of one
/// writer never conflict with each other; two writers conflict when any of
/// their paths overlap: the same path, or one inside the other (a set of
/// `/env` and a set of `/env/A`, or a remove of `/env` and a set inside
/// it). A conflict is an error, never last-write-wins.
///
/// Cost: one sort of all the paths, then a single pass.
pub fn merge<'p>(patches: &[&'p [PatchOp]]) -> Result<Vec<&'p PatchOp>, Conflict> {
    let mut writes: Vec<(&Pointer, usize)> = patches
        .iter()
        .enumerate()
        .flat_map(|(writer, ops)| ops.iter().map(move |op| (op.path(), writer)))
        .collect();
    // Sorted by tokens, a path comes right before the paths inside it, so
    // the writers whose paths contain the current one form a stack.
    writes.sort_unstable();
    let mut open: Vec<(&Pointer, usize)> = Vec::new();
    for &(path, writer) in &writes {
        while open.last().is_some_and(|(p, _)| !is_prefix(p, path)) {
            open.pop();
        }
        if let Some(&(other_path, other)) = open.iter().find(|(_, w)| *w != writer) {
            let (first, first_path, second, second_path) = if other < writer {
                (other, other_path, writer, path)
            } else {
                (writer, path, other, other_path)
            };
            return Err(Conflict {
                first,
                first_path: first_path.clone(),
                second,
                second_path: second_path.clone(),
            });
        }
        open.push((path, writer));
    }
    Ok(patches.iter().flat_map(|ops| ops.iter()).collect())
}

/// True if `prefix` is `path` or contains it.
fn is_prefix(prefix: &Pointer, path: &Pointer) -> bool {
    path.tokens.starts_with(&prefix.tokens)
}

/// Applies `ops` in order to `target`, all or nothing.
pub fn apply(target: &mut Value, ops: &[PatchOp]) -> Result<(), PatchError> {
    // Apply to a copy: a patch failing at its third operation must not leave
    // the first two behind.
    let mut scratch = target.clone();
    for op in ops {
        apply_one(&mut scratch, op)?;
    }
    *target = scratch;
    Ok(())
}

/// Applies several writers' patches in order, all or nothing, copying the
/// target once. On error, says which writer's patch failed.
pub fn apply_all(target: &mut Value, patches: &[&[PatchOp]]) -> Result<(), (usize, PatchError)> {
    let mut scratch = target.clone();
    for (writer, ops) in patches.iter().enumerate() {
        for op in *ops {
            apply_one(&mut scratch, op).map_err(|e| (writer, e))?;
        }
    }
    *target = scratch;
    Ok(())
}

fn apply_one(target: &mut Value, op: &PatchOp) -> Result<(), PatchError> {
    let path = op.path();
    let (last, parents) = path
        .tokens
        .split_last()
        .expect("a parsed pointer has at least one token");
    match op {
        PatchOp::Set { value, .. } => {
            let parent = walk_creating(target, path, parents)?;
            set_in(parent, path, parents, last, value.clone())
        }
        PatchOp::Remove { .. } => {
            if let Some(parent) = walk_existing(target, parents) {
                match parent {
                    Value::Object(map) => {
                        map.remove(last);
                    }
                    Value::Array(items) => {
                        if let Some(i) = array_index(last, items.len()) {
                            items.remove(i);
                        }
                    }
                    _ => {}
                }
            }
            Ok(())
        }
    }
}

fn walk_creating<'v>(
    mut at: &'v mut Value,
    path: &Pointer,
    parents: &[String],
) -> Result<&'v mut Value, PatchError> {
    for (depth, token) in parents.iter().enumerate() {
        at = match at {
            Value::Object(map) => map
                .entry(token.clone())
                .or_insert_with(|| Value::Object(Default::default())),
            Value::Array(items) => {
                let len = items.len();
                let i = array_index(token, len).ok_or_else(|| PatchError::BadIndex {
                    path: path.to_string(),
                    at: prefix(parents, depth),
                    token: token.clone(),
                    len,
                })?;
                &mut items[i]
            }
            other => {
                return Err(PatchError::NotAContainer {
                    path: path.to_string(),
                    at: prefix(parents, depth),
                    kind: kind_name(other),
                });
            }
        };
    }
    Ok(at)
}

fn walk_existing<'v>(mut at: &'v mut Value, parents: &[String]) -> Option<&'v mut Value> {
    for token in parents {
        at = match at {
            Value::Object(map) => map.get_mut(token)?,
            Value::Array(items) => {
                let i = array_index(token, items.len())?;
                &mut items[i]
            }
            _ => return None,
        };
    }
    Some(at)
}

fn set_in(
    parent: &mut Value,
    path: &Pointer,
    parents: &[String],
    last: &str,
    value: Value,
) -> Result<(), PatchError> {
    match parent {
        Value::Object(map) => {
            map.insert(last.to_owned(), value);
            Ok(())
        }
        Value::Array(items) if last == "-" => {
            items.push(value);
            Ok(())
        }
        Value::Array(items) => {
            let len = items.len();
            let i = array_index(last, len).ok_or_else(|| PatchError::BadIndex {
                path: path.to_string(),
                at: prefix(parents, parents.len()),
                token: last.to_owned(),
                len,
            })?;
            items[i] = value;
            Ok(())
        }
        other => Err(PatchError::NotAContainer {
            path: path.to_string(),
            at: prefix(parents, parents.len()),
            kind: kind_name(other),
        }),
    }
}

/// An RFC 6901 array index: digits, no leading zero, in bounds.
fn array_index(token: &str, len: usize) -> Option<usize> {
    let canonical = token == "0" || (!token.starts_with('0') && !token.is_empty());
    if !canonical || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse::<usize>().ok().filter(|&i| i < len)
}

fn prefix(tokens: &[String], depth: usize) -> String {
    if depth == 0 {
        return "the context root".to_owned();
    }
    Pointer {
        tokens: tokens[..depth].to_vec(),
    }
    .to_string()
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ops(list: &[(&str, Option<Value>)]) -> Vec<PatchOp> {
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
    fn disjoint_parallel_patches_merge_in_writer_order() {
        let a = ops(&[
            ("/metadata/a", Some(json!(1))),
            ("/env/A", Some(json!("x"))),
        ]);
        let b = ops(&[("/metadata/b", Some(json!(2))), ("/envx", None)]);
        let c = ops(&[("/metadata/a0", Some(json!(3)))]);
        let merged = merge(&[&a, &b, &c]).expect("no overlap");
        let paths: Vec<String> = merged.iter().map(|op| op.path().to_string()).collect();
        assert_eq!(
            paths,
            [
                "/metadata/a",
                "/env/A",
                "/metadata/b",
                "/envx",
                "/metadata/a0"
            ]
        );
    }

    #[test]
    fn one_writer_may_touch_its_own_paths_twice() {
        let a = ops(&[
            ("/env", Some(json!({}))),
            ("/env/A", Some(json!("x"))),
            ("/env/A", None),
        ]);
        assert_eq!(merge(&[&a]).expect("same writer").len(), 3);
    }

    #[test]
    fn overlapping_writes_of_two_writers_conflict() {
        let cases = [
            // same path
            (
                ("/env/A", Some(json!(1))),
                ("/env/A", Some(json!(1))),
                "/env/A",
                "/env/A",
            ),
            // a set inside a path the other removes
            (("/env", None), ("/env/A", Some(json!(1))), "/env", "/env/A"),
            // the other way round, and deeper
            (
                ("/m/x/y/z", Some(json!(1))),
                ("/m/x", Some(json!({}))),
                "/m/x/y/z",
                "/m/x",
            ),
        ];
        for (first, second, first_path, second_path) in cases {
            let a = ops(&[("/unrelated", Some(json!(0))), first]);
            let b = ops(&[second]);
            let c = ops(&[("/other", Some(json!(0)))]);
            let conflict = merge(&[&c, &a, &b]).expect_err("overlap");
            assert_eq!((conflict.first, conflict.second), (1, 2));
            assert_eq!(conflict.first_path.to_string(), first_path);
            assert_eq!(conflict.second_path.to_string(), second_path);
        }
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
}
