//! Applying patches in place, all or nothing: each operation records how to
//! take itself back, and a failure takes them back in reverse order.

use std::mem;
use std::sync::OnceLock;

use serde_json::{Map, Value};

use super::{PatchError, PatchOp, Pointer};
use crate::json::check_value;

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
pub(super) fn apply_all_to_copy(
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
