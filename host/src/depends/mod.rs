//! The plugins' dependency graph, from their manifests: who must be ready
//! before whom, and what makes a start impossible (a required dependency no
//! configured plugin provides, a version requirement it does not meet, a
//! cycle). [`plan`] is pure; [`Turn`] waits for a plugin's turn while the
//! plugins start together.
//!
//! A dependency names a *manifest* name (PROTOCOL.md §8.2). When one
//! executable is configured twice, a dependent waits for every instance
//! carrying that manifest name, and each must satisfy its requirement.

mod turn;

use std::collections::HashMap;
use std::fmt;

use crate::manifest::Manifest;

pub(crate) use turn::StartOrder;
pub use turn::Turn;

/// One plugin as the graph sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node<'a> {
    /// The name the host knows the plugin by.
    pub(crate) name: &'a str,
    /// Its manifest; `None` when it failed before `Describe`.
    pub(crate) manifest: Option<&'a Manifest>,
}

/// Why a plugin's dependencies keep it from starting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DependencyError {
    /// A required dependency no configured plugin provides.
    #[error(
        "requires plugin {dependency}, but no configured plugin's manifest is named {dependency}"
    )]
    Missing {
        /// The manifest name it requires.
        dependency: String,
    },
    /// A required dependency named after a configured plugin whose
    /// manifest carries another name (dependencies name manifests).
    #[error(
        "requires plugin {dependency}, but the plugin configured as {dependency} is named {manifest} in its manifest"
    )]
    Misnamed {
        /// The manifest name it requires.
        dependency: String,
        /// The manifest name of the instance called `dependency`.
        manifest: String,
    },
    /// A dependency whose version does not meet the requirement.
    #[error("requires plugin {dependency} {requirement}, but plugin {found} is version {version}")]
    Unsatisfied {
        /// The manifest name it requires.
        dependency: String,
        /// The version requirement, as declared.
        requirement: String,
        /// The instance that carries that manifest name.
        found: String,
        /// Its manifest version.
        version: String,
    },
    /// The plugin is part of a dependency cycle, so none of its members
    /// can be ready first.
    #[error("is in a dependency cycle: {}", .0.join(" → "))]
    Cycle(
        /// The cycle's members in order, starting and ending with this one.
        Vec<String>,
    ),
    /// A plugin it depends on failed to start.
    #[error("its dependency {0} failed to start")]
    Failed(
        /// The instance that failed.
        String,
    ),
}

/// Every dependency problem of one plugin, in the order its manifest lists
/// them (a cycle last). Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyErrors(pub Vec<DependencyError>);

impl fmt::Display for DependencyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, err) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{err}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DependencyErrors {}

/// For each node, the nodes that must be ready before it, or every reason
/// it cannot start. Optional dependencies that no node provides are
/// ignored; present ones order the start and must meet their requirement.
pub(crate) fn plan(nodes: &[Node<'_>]) -> Vec<Result<Vec<usize>, DependencyErrors>> {
    let (edges, mut problems) = resolve(nodes);
    let (_, unordered) = layered(&edges);
    for (i, problems) in problems.iter_mut().enumerate() {
        // Only what layering could not place can be on a cycle.
        if !unordered[i] {
            continue;
        }
        if let Some(cycle) = cycle_through(i, &edges) {
            let names = cycle.iter().map(|&j| nodes[j].name.to_owned()).collect();
            problems.push(DependencyError::Cycle(names));
        }
    }
    edges
        .into_iter()
        .zip(problems)
        .map(|(deps, problems)| {
            if problems.is_empty() {
                Ok(deps)
            } else {
                Err(DependencyErrors(problems))
            }
        })
        .collect()
}

/// Layers of nodes to stop one after another: first those nothing depends
/// on, last those everything depends on. Problems do not block a stop: a
/// missing dependency is no edge, and what a cycle leaves goes last.
pub(crate) fn stop_layers(nodes: &[Node<'_>]) -> Vec<Vec<usize>> {
    let (edges, _) = resolve(nodes);
    let (mut layers, unordered) = layered(&edges);
    let cyclic: Vec<usize> = (0..nodes.len()).filter(|&i| unordered[i]).collect();
    if !cyclic.is_empty() {
        layers.push(cyclic);
    }
    layers
}

/// Kahn's layering over `edges`, dependents first; and which nodes it could
/// not place (those on a cycle, or waiting for one).
fn layered(edges: &[Vec<usize>]) -> (Vec<Vec<usize>>, Vec<bool>) {
    // How many nodes still running depend on each node.
    let mut dependents = vec![0usize; edges.len()];
    for &j in edges.iter().flatten() {
        dependents[j] += 1;
    }
    let mut unordered = vec![true; edges.len()];
    let mut layer: Vec<usize> = (0..edges.len()).filter(|&i| dependents[i] == 0).collect();
    let mut layers = Vec::new();
    while !layer.is_empty() {
        let mut next = Vec::new();
        for &i in &layer {
            unordered[i] = false;
            for &j in &edges[i] {
                dependents[j] -= 1;
                if dependents[j] == 0 {
                    next.push(j);
                }
            }
        }
        next.sort_unstable();
        next.dedup();
        layers.push(std::mem::replace(&mut layer, next));
    }
    (layers, unordered)
}

/// Each node's edges (the nodes it waits for) and its problems other than
/// cycles.
fn resolve(nodes: &[Node<'_>]) -> (Vec<Vec<usize>>, Vec<Vec<DependencyError>>) {
    let mut edges = vec![Vec::new(); nodes.len()];
    let mut problems = vec![Vec::new(); nodes.len()];
    // By manifest name; a config of thousands of plugins stays linear.
    let mut by_manifest: HashMap<&str, Vec<usize>> = HashMap::new();
    for (j, node) in nodes.iter().enumerate() {
        if let Some(m) = node.manifest {
            by_manifest.entry(&*m.name).or_default().push(j);
        }
    }
    let by_name: HashMap<&str, usize> =
        nodes.iter().enumerate().map(|(j, n)| (n.name, j)).collect();
    for (i, node) in nodes.iter().enumerate() {
        let Some(manifest) = node.manifest else {
            continue;
        };
        for dep in &manifest.dependencies {
            let providers: Vec<usize> = by_manifest
                .get(&*dep.name)
                .into_iter()
                .flatten()
                .copied()
                .filter(|&j| j != i)
                .collect();
            if providers.is_empty() && !dep.optional {
                problems[i].push(
                    match by_name
                        .get(&*dep.name)
                        .filter(|&&j| j != i)
                        .map(|&j| nodes[j].manifest)
                    {
                        // It failed before saying what it is: most likely it.
                        Some(None) => DependencyError::Failed(dep.name.clone()),
                        Some(Some(m)) => DependencyError::Misnamed {
                            dependency: dep.name.clone(),
                            manifest: m.name.clone(),
                        },
                        None => DependencyError::Missing {
                            dependency: dep.name.clone(),
                        },
                    },
                );
            }
            for &j in &providers {
                let Some(found) = nodes[j].manifest else {
                    continue;
                };
                match &dep.version_req {
                    Some(req) if !req.matches(&found.version) => {
                        problems[i].push(DependencyError::Unsatisfied {
                            dependency: dep.name.clone(),
                            requirement: req.to_string(),
                            found: nodes[j].name.to_owned(),
                            version: found.version.to_string(),
                        });
                    }
                    _ => edges[i].push(j),
                }
            }
        }
    }
    (edges, problems)
}

/// The shortest cycle from `start` back to itself, `start` first and last.
fn cycle_through(start: usize, edges: &[Vec<usize>]) -> Option<Vec<usize>> {
    let mut came_from: Vec<Option<usize>> = vec![None; edges.len()];
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(at) = queue.pop_front() {
        for &next in &edges[at] {
            if next == start {
                // Walk back from `at` to `start`, then read it forwards:
                // `start` waits for the next node, which waits for the next.
                let mut path = vec![at];
                let mut step = at;
                while step != start {
                    step = came_from[step]?;
                    path.push(step);
                }
                path.reverse();
                path.push(start);
                return Some(path);
            }
            if came_from[next].is_none() {
                came_from[next] = Some(at);
                queue.push_back(next);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests;
