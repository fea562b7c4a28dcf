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

use std::fmt::{self, Write as _};
use std::mem;
use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::json::{MAX_NESTING, check_value, json_to_value, value_to_json};
use crate::v1;

mod merge;

pub use merge::{Conflict, merge};

/// The deepest a patch may write: a set can place a value no deeper than
/// the nesting limit allows ([`MAX_NESTING`], three levels per object), so
/// a longer pointer is refused before anything is walked. Every set is
/// also held to the limit itself, value included (see [`apply`]).
pub const MAX_DEPTH: usize = MAX_NESTING / 3;

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
        let depth = rest.bytes().filter(|&b| b == b'/').count() + 1;
        if depth > MAX_DEPTH {
            return Err(bad(&format!(
                "it is {depth} levels deep; a patch may reach at most {MAX_DEPTH} levels \
                 (deeper contexts cannot travel as protobuf messages)"
            )));
        }
        // Sized up front: `split` cannot tell how many tokens it will give.
        let mut tokens = Vec::with_capacity(depth);
        for raw in rest.split('/') {
            tokens.push(unescape(raw).ok_or_else(|| bad("'~' must be followed by '0' or '1'"))?);
        }
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
        // Writes the unescaped runs as they are, with no copy of the token.
        for t in &self.tokens {
            f.write_char('/')?;
            let mut run = 0;
            for (i, c) in t.match_indices(['~', '/']) {
                f.write_str(&t[run..i])?;
                f.write_str(if c == "~" { "~0" } else { "~1" })?;
                run = i + 1;
            }
            f.write_str(&t[run..])?;
        }
        Ok(())
    }
}

fn unescape(raw: &str) -> Option<String> {
    if !raw.contains('~') {
        return Some(raw.to_owned());
    }
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

/// Applies `ops` in order to `target`, all or nothing.
pub fn apply(target: &mut Value, ops: &[PatchOp]) -> Result<(), PatchError> {
    apply_all(target, &[ops]).map_err(|(_, err)| err)
}

/// Applies several writers' patches in order, all or nothing. On error,
/// says which writer's patch failed.
///
/// The operations are applied in place: a patch failing at its third
/// operation must not leave the first two behind, so each operation before
/// the last `set` (the only kind that can fail) records how to take itself
/// back, and a failure takes them back in reverse order. A failing
/// operation has changed nothing: it fails at a value that was already
/// there, before creating anything. The cost is that of the operations,
/// not of the size of the target.
pub fn apply_all(target: &mut Value, patches: &[&[PatchOp]]) -> Result<(), (usize, PatchError)> {
    let ops = || {
        patches
            .iter()
            .enumerate()
            .flat_map(|(writer, ops)| ops.iter().map(move |op| (writer, op)))
    };
    // Operations after the last set cannot fail: no undo needed for them,
    // nor for the last set, since a failing operation changes nothing.
    let Some(last_set) = ops()
        .enumerate()
        .filter(|(_, (_, op))| matches!(op, PatchOp::Set { .. }))
        .map(|(i, _)| i)
        .last()
    else {
        for (_, op) in ops() {
            apply_one(target, op, None).expect("a remove never fails");
        }
        return Ok(());
    };
    // Taking back the remove of a key re-inserts it; where maps keep
    // insertion order that would move it to the end, so copy the target
    // instead (removes from arrays are counted too: cheaper than telling).
    let removes_before_last_set = ops()
        .take(last_set)
        .any(|(_, op)| matches!(op, PatchOp::Remove { .. }));
    if removes_before_last_set && maps_keep_insertion_order() {
        return apply_all_to_copy(target, patches);
    }
    let mut undo = Vec::new();
    for (i, (writer, op)) in ops().enumerate() {
        let log = (i < last_set).then_some(&mut undo);
        if let Err(err) = apply_one(target, op, log) {
            roll_back(target, undo);
            return Err((writer, err));
        }
    }
    Ok(())
}

/// [`apply_all`] on a copy of the target, replacing it only on success.
fn apply_all_to_copy(
    target: &mut Value,
    patches: &[&[PatchOp]],
) -> Result<(), (usize, PatchError)> {
    let mut scratch = target.clone();
    for (writer, ops) in patches.iter().enumerate() {
        for op in *ops {
            apply_one(&mut scratch, op, None).map_err(|e| (writer, e))?;
        }
    }
    *target = scratch;
    Ok(())
}

/// True if `serde_json` was built with `preserve_order` (by any crate in
/// the build), so that a map iterates in insertion order.
fn maps_keep_insertion_order() -> bool {
    static ORDERED: OnceLock<bool> = OnceLock::new();
    *ORDERED.get_or_init(|| {
        let mut map = Map::new();
        map.insert("b".to_owned(), Value::Null);
        map.insert("a".to_owned(), Value::Null);
        map.keys().next().is_some_and(|k| k == "b")
    })
}

/// How to take back one change an operation made. `at` is the container
/// the change was made in; when it is taken back (last change first), the
/// target is as the change left it, so `at` leads to the same container.
#[derive(Debug)]
enum Undo<'p> {
    /// Remove `key`, which the operation added to the object.
    Added { at: &'p [String], key: &'p str },
    /// Put back the value `key` had in the object.
    Replaced {
        at: &'p [String],
        key: &'p str,
        old: Value,
    },
    /// Put back the entry removed from the object.
    RemovedKey {
        at: &'p [String],
        key: String,
        old: Value,
    },
    /// Put back item `index` of the array.
    ReplacedItem {
        at: &'p [String],
        index: usize,
        old: Value,
    },
    /// Re-insert item `index`, removed from the array.
    RemovedItem {
        at: &'p [String],
        index: usize,
        old: Value,
    },
    /// Drop the item appended to the array.
    Appended { at: &'p [String] },
}

/// Takes back the changes in `log`, last first.
fn roll_back(target: &mut Value, log: Vec<Undo<'_>>) {
    for undo in log.into_iter().rev() {
        let at = match &undo {
            Undo::Added { at, .. }
            | Undo::Replaced { at, .. }
            | Undo::RemovedKey { at, .. }
            | Undo::ReplacedItem { at, .. }
            | Undo::RemovedItem { at, .. }
            | Undo::Appended { at } => *at,
        };
        let container = walk_existing(target, at);
        let undone = match (undo, container) {
            (Undo::Added { key, .. }, Some(Value::Object(map))) => map.remove(key).is_some(),
            (Undo::Replaced { key, old, .. }, Some(Value::Object(map))) => {
                map.get_mut(key).map(|slot| *slot = old).is_some()
            }
            (Undo::RemovedKey { key, old, .. }, Some(Value::Object(map))) => {
                map.insert(key, old).is_none()
            }
            (Undo::ReplacedItem { index, old, .. }, Some(Value::Array(items))) => {
                items.get_mut(index).map(|slot| *slot = old).is_some()
            }
            (Undo::RemovedItem { index, old, .. }, Some(Value::Array(items)))
                if index <= items.len() =>
            {
                items.insert(index, old);
                true
            }
            (Undo::Appended { .. }, Some(Value::Array(items))) => items.pop().is_some(),
            _ => false,
        };
        debug_assert!(undone, "the undo log matches the target");
    }
}

/// Applies one operation; with `log`, records how to take it back.
fn apply_one<'p>(
    target: &mut Value,
    op: &'p PatchOp,
    log: Option<&mut Vec<Undo<'p>>>,
) -> Result<(), PatchError> {
    let path = op.path();
    let (last, parents) = path
        .tokens
        .split_last()
        .expect("a parsed pointer has at least one token");
    match op {
        PatchOp::Set { value, .. } => {
            // Before anything changes: a failing operation changes nothing.
            check_value(value, level_above(target, parents)).map_err(|deep| {
                let at = match deep.at.as_str() {
                    "the value" => "the value".to_owned(),
                    inner => format!("{path}{inner}"),
                };
                PatchError::TooDeep {
                    path: path.to_string(),
                    why: crate::json::TooDeep { at }.to_string(),
                }
            })?;
            let undo = match descend(target, parents) {
                Ok(parent) => set_in(parent, path, parents, last, value.clone())?,
                Err((depth, Stop::Missing)) => create(target, parents, depth, last, value.clone()),
                Err((depth, Stop::NotAContainer(kind))) => {
                    return Err(PatchError::NotAContainer {
                        path: path.to_string(),
                        at: prefix(parents, depth),
                        kind,
                    });
                }
                Err((depth, Stop::BadIndex(len))) => {
                    return Err(PatchError::BadIndex {
                        path: path.to_string(),
                        at: prefix(parents, depth),
                        token: parents[depth].clone(),
                        len,
                    });
                }
            };
            if let Some(log) = log {
                log.push(undo);
            }
            Ok(())
        }
        PatchOp::Remove { .. } => {
            let undo = match walk_existing(target, parents) {
                Some(Value::Object(map)) => {
                    map.remove_entry(last.as_str())
                        .map(|(key, old)| Undo::RemovedKey {
                            at: parents,
                            key,
                            old,
                        })
                }
                Some(Value::Array(items)) => {
                    array_index(last, items.len()).map(|index| Undo::RemovedItem {
                        at: parents,
                        index,
                        old: items.remove(index),
                    })
                }
                _ => None,
            };
            if let (Some(log), Some(undo)) = (log, undo) {
                log.push(undo);
            }
            Ok(())
        }
    }
}

/// The protobuf message level of the value's parent once a set at
/// `parents` + one token is applied, counted as [`crate::json`] does: the
/// context's `Struct` is level 1, a member's map entry one more, its
/// `Value` one more, and a container's `Struct` or `ListValue` one more.
/// Parents the set would create are objects; the walk stops where the
/// set would fail anyway (what it returns then does not matter).
fn level_above(target: &Value, parents: &[String]) -> usize {
    let (mut container, mut at) = (1, Some(target));
    for token in parents {
        let child = match at {
            Some(Value::Object(map)) => map.get(token),
            Some(Value::Array(items)) => array_index(token, items.len()).map(|i| &items[i]),
            _ => None,
        };
        // An array's element Value sits right under its ListValue; an
        // object's member under a map entry.
        let value_level = container
            + if matches!(at, Some(Value::Array(_))) {
                1
            } else {
                2
            };
        container = value_level + 1;
        at = child;
    }
    if matches!(at, Some(Value::Array(_))) {
        container
    } else {
        container + 1
    }
}

/// Why [`descend`] stopped.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// The object has no such key.
    Missing,
    /// The value (of this kind) is neither an object nor an array.
    NotAContainer(&'static str),
    /// The token is not an index into the array (of this length).
    BadIndex(usize),
}

/// Walks down `parents`, one lookup per token; on failure, says at which
/// depth and why.
fn descend<'v>(mut at: &'v mut Value, parents: &[String]) -> Result<&'v mut Value, (usize, Stop)> {
    for (depth, token) in parents.iter().enumerate() {
        at = match at {
            Value::Object(map) => map.get_mut(token).ok_or((depth, Stop::Missing))?,
            Value::Array(items) => {
                let len = items.len();
                let i = array_index(token, len).ok_or((depth, Stop::BadIndex(len)))?;
                &mut items[i]
            }
            other => return Err((depth, Stop::NotAContainer(kind_name(other)))),
        };
    }
    Ok(at)
}

/// Sets `value` at `parents` + `last`, where the object at
/// `parents[..depth]` has no `parents[depth]`: builds the missing objects
/// around the value and inserts them there at once. Cannot fail.
fn create<'p>(
    target: &mut Value,
    parents: &'p [String],
    depth: usize,
    last: &str,
    value: Value,
) -> Undo<'p> {
    let mut nested = single(last, value);
    for token in parents[depth + 1..].iter().rev() {
        nested = single(token, nested);
    }
    let (at, key) = (&parents[..depth], &parents[depth]);
    let Some(Value::Object(map)) = walk_existing(target, at) else {
        unreachable!("descend stopped at a missing key of an object here");
    };
    map.insert(key.clone(), nested);
    Undo::Added { at, key }
}

/// `{key: value}`.
fn single(key: &str, value: Value) -> Value {
    let mut map = Map::new();
    map.insert(key.to_owned(), value);
    Value::Object(map)
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

/// Sets `last` in `parent` (at `parents`); returns how to take it back.
fn set_in<'p>(
    parent: &mut Value,
    path: &Pointer,
    parents: &'p [String],
    last: &'p str,
    value: Value,
) -> Result<Undo<'p>, PatchError> {
    match parent {
        // Inserting with a copy of the key costs one lookup; looking the
        // key up first to spare the copy would cost two for a new key.
        Value::Object(map) => Ok(match map.insert(last.to_owned(), value) {
            Some(old) => Undo::Replaced {
                at: parents,
                key: last,
                old,
            },
            None => Undo::Added {
                at: parents,
                key: last,
            },
        }),
        Value::Array(items) if last == "-" => {
            items.push(value);
            Ok(Undo::Appended { at: parents })
        }
        Value::Array(items) => {
            let len = items.len();
            let index = array_index(last, len).ok_or_else(|| PatchError::BadIndex {
                path: path.to_string(),
                at: prefix(parents, parents.len()),
                token: last.to_owned(),
                len,
            })?;
            Ok(Undo::ReplacedItem {
                at: parents,
                index,
                old: mem::replace(&mut items[index], value),
            })
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
