//! Merging the patches of plugins that ran in parallel on the same context.
//!
//! The rule: each writer claims the places it writes, and two writers
//! conflict when their claims overlap (the same place, or one inside the
//! other). A write claims its path, except that a write anywhere inside an
//! array claims the **whole array**: indices shift when an element is
//! removed and `-` means "after whatever is last", so two writers' array
//! operations only mean what each intended if nobody else touches the
//! array. Whether a path goes through an array is read off the context the
//! writers saw. With claims disjoint, the writers' patches commute: the
//! merge is one writer's patch after another's, in any order.

use serde_json::Value;

use super::{PatchOp, Pointer};

/// Two writers whose patches touch the same place: the same path, one path
/// inside another, or the same array.
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
    /// The place both claim: the outer of the two paths, or the array
    /// both write into.
    pub at: Pointer,
    /// True if `at` is an array of the context (claimed as a whole).
    pub in_array: bool,
}

/// Merges the patches of independent writers (plugins that ran in parallel
/// on `base`) into one, in the order given. Operations of one writer never
/// conflict with each other; two writers conflict when their claims overlap
/// (module docs): a set of `/env` and a set of `/env/A`, a remove of `/env`
/// and a set inside it, or any two writes into the array `/args`
/// (`/args/0` and `/args/-`). A conflict is an error, never
/// last-write-wins.
///
/// Cost: a walk down `base` per operation, one sort of the claims, then a
/// single pass; nothing to check when only one writer has operations.
pub fn merge<'p>(base: &Value, patches: &[&'p [PatchOp]]) -> Result<Vec<&'p PatchOp>, Conflict> {
    let total = patches.iter().map(|ops| ops.len()).sum();
    // A single writer cannot conflict with itself.
    if patches
        .iter()
        .filter(|ops| !ops.is_empty())
        .nth(1)
        .is_some()
    {
        check_disjoint(base, patches, total)?;
    }
    let mut merged = Vec::with_capacity(total);
    for ops in patches {
        merged.extend(ops.iter());
    }
    Ok(merged)
}

/// One operation's claim: how many tokens of its path it claims, whether
/// that is an array, and who wrote it.
#[derive(Debug, Clone, Copy)]
struct Claim<'p> {
    path: &'p Pointer,
    len: usize,
    in_array: bool,
    writer: usize,
}

impl Claim<'_> {
    fn tokens(&self) -> &[String] {
        &self.path.tokens[..self.len]
    }
}

/// The claim of a write at `path`: up to the first array it goes into in
/// `base`, or the whole path.
fn claim<'p>(base: &Value, path: &'p Pointer, writer: usize) -> Claim<'p> {
    let mut at = Some(base);
    for (i, token) in path.tokens.iter().enumerate() {
        at = match at {
            Some(Value::Array(_)) => {
                return Claim {
                    path,
                    len: i,
                    in_array: true,
                    writer,
                };
            }
            Some(Value::Object(map)) => map.get(token),
            _ => None,
        };
    }
    // The path itself may be an array: claimed as a whole by its path.
    let in_array = matches!(at, Some(Value::Array(_)));
    Claim {
        path,
        len: path.tokens.len(),
        in_array,
        writer,
    }
}

/// The first conflict among `patches` (`total` operations), in path order.
fn check_disjoint(base: &Value, patches: &[&[PatchOp]], total: usize) -> Result<(), Conflict> {
    let mut claims: Vec<Claim<'_>> = Vec::with_capacity(total);
    for (writer, ops) in patches.iter().enumerate() {
        claims.extend(ops.iter().map(|op| claim(base, op.path(), writer)));
    }
    // Sorted by tokens, a claim comes right before the claims inside it, so
    // the claims containing the current one form a stack.
    claims.sort_unstable_by(|a, b| a.tokens().cmp(b.tokens()).then(a.writer.cmp(&b.writer)));
    let mut open: Vec<Claim<'_>> = Vec::new();
    for &here in &claims {
        while open
            .last()
            .is_some_and(|outer| !here.tokens().starts_with(outer.tokens()))
        {
            open.pop();
        }
        if let Some(&outer) = open.iter().find(|c| c.writer != here.writer) {
            let (first, second) = if outer.writer < here.writer {
                (outer, here)
            } else {
                (here, outer)
            };
            return Err(Conflict {
                first: first.writer,
                first_path: first.path.clone(),
                second: second.writer,
                second_path: second.path.clone(),
                at: Pointer {
                    tokens: outer.tokens().to_vec(),
                },
                in_array: outer.in_array,
            });
        }
        open.push(here);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::super::apply_all;
    use super::super::tests::ops;
    use super::*;

    /// Merges against a context with no arrays.
    fn merge_flat<'p>(patches: &[&'p [PatchOp]]) -> Result<Vec<&'p PatchOp>, Conflict> {
        merge(&json!({}), patches)
    }

    #[test]
    fn disjoint_parallel_patches_merge_in_writer_order() {
        let a = ops(&[
            ("/metadata/a", Some(json!(1))),
            ("/env/A", Some(json!("x"))),
        ]);
        let b = ops(&[("/metadata/b", Some(json!(2))), ("/envx", None)]);
        let c = ops(&[("/metadata/a0", Some(json!(3)))]);
        let merged = merge_flat(&[&a, &b, &c]).expect("no overlap");
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
        assert_eq!(merge_flat(&[&a]).expect("same writer").len(), 3);
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
            let conflict = merge_flat(&[&c, &a, &b]).expect_err("overlap");
            assert_eq!((conflict.first, conflict.second), (1, 2));
            assert_eq!(conflict.first_path.to_string(), first_path);
            assert_eq!(conflict.second_path.to_string(), second_path);
        }
    }

    #[test]
    fn one_writer_with_operations_never_conflicts() {
        let a = ops(&[("/env", Some(json!({}))), ("/env/A", Some(json!("x")))]);
        let empty = ops(&[]);
        let merged = merge_flat(&[&empty, &a, &empty]).expect("one writer");
        assert_eq!(merged, a.iter().collect::<Vec<_>>());
        assert!(merge_flat(&[]).expect("nobody").is_empty());
        let b = ops(&[("/env/A", None)]);
        let conflict = merge_flat(&[&empty, &a, &b]).expect_err("two writers");
        assert_eq!((conflict.first, conflict.second), (1, 2));
    }

    #[test]
    fn two_writers_into_one_array_conflict_whatever_the_indices() {
        let base = json!({"args": ["a", "b", "c"], "m": {"list": [{"x": 1}, {"y": 2}]}});
        let cases = [
            // remove one index, set a later one: the set would land on
            // the element after the one meant
            (("/args/0", None), ("/args/2", Some(json!("z"))), "/args"),
            // append, and set past the end (which the append made valid)
            (
                ("/args/-", Some(json!("d"))),
                ("/args/3", Some(json!("z"))),
                "/args",
            ),
            // different elements, deeper
            (
                ("/m/list/0/x", Some(json!(5))),
                ("/m/list/1/y", None),
                "/m/list",
            ),
        ];
        for (first, second, at) in cases {
            let a = ops(&[("/unrelated", Some(json!(0))), first.clone()]);
            let b = ops(&[second]);
            let conflict = merge(&base, &[&a, &b]).expect_err("one array");
            assert_eq!((conflict.first, conflict.second), (0, 1), "{first:?}");
            assert_eq!(conflict.first_path.to_string(), first.0);
            assert!(conflict.in_array);
            assert_eq!(conflict.at.to_string(), at);
        }
        // Beside the array, and in an array created by one writer alone.
        let a = ops(&[("/args/1", Some(json!("B"))), ("/new", Some(json!([1])))]);
        let b = ops(&[("/m/other", Some(json!(1))), ("/m/list2/-", Some(json!(1)))]);
        assert!(merge(&base, &[&a, &b]).is_ok());
    }

    /// A context with arrays at several depths, and the paths the generated
    /// patches write: indices in and past range, `-`, keys beside and
    /// inside the arrays.
    fn base() -> Value {
        json!({
            "a": [1, 2, 3],
            "o": {"l": [{"k": 1}, {"k": 2}], "s": "x"},
            "e": []
        })
    }

    const PATHS: [&str; 16] = [
        "/a", "/a/0", "/a/1", "/a/2", "/a/3", "/a/-", "/o", "/o/l", "/o/l/0", "/o/l/1/k", "/o/l/-",
        "/o/l/2", "/o/s", "/o/t", "/e/-", "/e/0",
    ];

    fn op() -> impl Strategy<Value = PatchOp> {
        let value = prop_oneof![
            Just(json!(7)),
            Just(json!("v")),
            Just(json!([0])),
            Just(json!({"k": 0}))
        ];
        (0..PATHS.len(), proptest::option::of(value)).prop_map(|(i, value)| match value {
            Some(value) => PatchOp::set(PATHS[i], value).expect("valid"),
            None => PatchOp::remove(PATHS[i]).expect("valid"),
        })
    }

    proptest! {
        /// For any two patches from different writers: a conflict naming
        /// both, or applying them in either order gives the same result.
        #[test]
        fn two_writers_conflict_or_commute(
            a in proptest::collection::vec(op(), 0..4),
            b in proptest::collection::vec(op(), 0..4),
        ) {
            let base = base();
            match merge(&base, &[&a, &b]) {
                Err(conflict) => prop_assert_eq!((conflict.first, conflict.second), (0, 1)),
                Ok(merged) => {
                    let merged: Vec<PatchOp> = merged.into_iter().cloned().collect();
                    let (mut ab, mut ba, mut m) = (base.clone(), base.clone(), base.clone());
                    let ab_ok = apply_all(&mut ab, &[&a, &b]).is_ok();
                    let ba_ok = apply_all(&mut ba, &[&b, &a]).is_ok();
                    let m_ok = apply_all(&mut m, &[&merged]).is_ok();
                    prop_assert_eq!(ab_ok, ba_ok);
                    prop_assert_eq!(ab_ok, m_ok);
                    if ab_ok {
                        prop_assert_eq!(&ab, &ba);
                        prop_assert_eq!(&ab, &m);
                    }
                }
            }
        }
    }
}
