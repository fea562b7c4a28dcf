//! Plugins starting together, each configured only once the plugins it
//! depends on are ready.
//!
//! Every plugin is spawned at once and described; dependencies are known
//! only then. A plugin that declares none goes straight on to `Configure`.
//! One that declares some waits until every plugin has described itself
//! (or failed), so that the graph is whole: then it is refused if its
//! dependencies are missing, unsatisfied or cyclic, and otherwise waits
//! until each of them is ready (or fails).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

use super::{DependencyError, DependencyErrors, Node, plan};
use crate::error::ErrorKind;
use crate::manifest::Manifest;

/// The start of a set of plugins, shared by their [`Turn`]s.
#[derive(Debug)]
pub(crate) struct StartOrder {
    board: watch::Sender<Board>,
}

/// How far each plugin has come.
#[derive(Debug)]
struct Board {
    /// Instance names, by index.
    names: Vec<String>,
    /// Manifests, once described.
    manifests: Vec<Option<Manifest>>,
    stages: Vec<Stage>,
    /// The graph's verdict per plugin, once no plugin is still `Starting`.
    plan: Option<Vec<Result<Vec<usize>, DependencyErrors>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Starting,
    Described,
    Ready,
    Failed,
}

/// One plugin's place in a start: [`Turn::wait`] before `Configure`. A turn
/// dropped before it is marked ready counts as a failed start, so a
/// dependent never waits for a plugin whose start was given up.
#[derive(Debug)]
pub struct Turn {
    order: Arc<StartOrder>,
    index: usize,
    ready: AtomicBool,
}

impl StartOrder {
    /// A start of the plugins called `names` (turns `0..names.len()`), none
    /// described yet, beside `running` ones, ready already: a dependency on
    /// one of those is met at once, and checked against its manifest.
    pub(crate) fn joining(names: Vec<String>, running: Vec<(String, Manifest)>) -> Arc<StartOrder> {
        let n = names.len();
        let mut names = names;
        let mut manifests = vec![None; n];
        let mut stages = vec![Stage::Starting; n];
        for (name, manifest) in running {
            names.push(name);
            manifests.push(Some(manifest));
            stages.push(Stage::Ready);
        }
        let (board, _) = watch::channel(Board {
            names,
            manifests,
            stages,
            plan: None,
        });
        Arc::new(StartOrder { board })
    }

    /// The turn of the plugin at `index`.
    pub(crate) fn turn(self: &Arc<StartOrder>, index: usize) -> Turn {
        Turn {
            order: self.clone(),
            index,
            ready: AtomicBool::new(false),
        }
    }

    fn set(&self, index: usize, stage: Stage, manifest: Option<&Manifest>) {
        self.board.send_modify(|board| {
            board.stages[index] = stage;
            if let Some(manifest) = manifest {
                board.manifests[index] = Some(manifest.clone());
            }
            if board.plan.is_none() && !board.stages.contains(&Stage::Starting) {
                let nodes: Vec<Node<'_>> = board
                    .names
                    .iter()
                    .zip(&board.manifests)
                    .map(|(name, manifest)| Node {
                        name,
                        manifest: manifest.as_ref(),
                    })
                    .collect();
                board.plan = Some(plan(&nodes));
            }
        });
    }
}

impl Turn {
    /// Records `manifest` and waits until the plugin may be configured: at
    /// once without dependencies; otherwise once every dependency is ready.
    /// An error says why it may not start.
    pub async fn wait(&self, manifest: &Manifest) -> Result<(), ErrorKind> {
        let mut board = self.order.board.subscribe();
        self.order.set(self.index, Stage::Described, Some(manifest));
        if manifest.dependencies.is_empty() {
            return Ok(());
        }
        // The sender lives in `self.order`, so the channel never closes.
        let deps = {
            let planned = board
                .wait_for(|b| b.plan.is_some())
                .await
                .map_err(|_| closed())?;
            match planned.plan.as_ref().map(|plan| &plan[self.index]) {
                Some(Ok(deps)) => deps.clone(),
                Some(Err(errors)) => return Err(ErrorKind::Dependencies(errors.clone())),
                None => return Err(closed()),
            }
        };
        let settled = board
            .wait_for(|b| {
                deps.iter().all(|&j| b.stages[j] == Stage::Ready)
                    || deps.iter().any(|&j| b.stages[j] == Stage::Failed)
            })
            .await
            .map_err(|_| closed())?;
        match deps.iter().find(|&&j| settled.stages[j] == Stage::Failed) {
            Some(&j) => Err(ErrorKind::Dependencies(DependencyErrors(vec![
                DependencyError::Failed(settled.names[j].clone()),
            ]))),
            None => Ok(()),
        }
    }

    /// Marks the plugin ready: its dependents may go on.
    pub(crate) fn ready(&self) {
        self.ready.store(true, Ordering::Release);
        self.order.set(self.index, Stage::Ready, None);
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if !self.ready.load(Ordering::Acquire) {
            self.order.set(self.index, Stage::Failed, None);
        }
    }
}

fn closed() -> ErrorKind {
    ErrorKind::Unhealthy("the start was abandoned".to_owned())
}
