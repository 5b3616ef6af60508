//! Re-reading TLS files on a timer, and swapping in the configuration built
//! from them when their contents change.
//!
//! A timer, not file-change events: the kubelet updates a mounted Secret by
//! swapping a symbolic link to a new folder, which file watchers on the
//! old paths do not see reliably.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use super::{FileKind, TlsError, files};

/// A configuration built from files, replaced when the files change.
pub(crate) struct Reloading<T> {
    current: RwLock<Arc<T>>,
}

impl<T: Send + Sync + 'static> Reloading<T> {
    /// Reads `sources`, builds the first configuration with `build`, and,
    /// unless `interval` is zero, starts a task that reads the files every
    /// `interval` and rebuilds the configuration when their contents
    /// changed. A file that fails to load is logged and the previous
    /// configuration stays. The task ends after the last clone of the
    /// returned value is dropped.
    ///
    /// `build` receives the contents in the order of `sources`.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, when `interval` is not zero.
    pub(crate) fn start<B>(
        name: &'static str,
        sources: Vec<(FileKind, PathBuf)>,
        interval: Duration,
        build: B,
    ) -> Result<Arc<Self>, TlsError>
    where
        B: Fn(&[Vec<u8>]) -> Result<T, TlsError> + Send + Sync + 'static,
    {
        let contents = read_all(&sources)?;
        let config = build(&contents)?;
        let state = Arc::new(Self {
            current: RwLock::new(Arc::new(config)),
        });
        if !interval.is_zero() {
            tokio::spawn(watch(
                Arc::downgrade(&state),
                name,
                sources,
                contents,
                interval,
                build,
            ));
        }
        Ok(state)
    }

    /// Returns the configuration built from the newest valid files.
    pub(crate) fn current(&self) -> Arc<T> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn replace(&self, config: T) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
    }
}

/// Reads every file, in order.
fn read_all(sources: &[(FileKind, PathBuf)]) -> Result<Vec<Vec<u8>>, TlsError> {
    // Blocking reads: the files are a few kilobytes on a local volume (a
    // Secret is a tmpfs), read once a minute.
    sources
        .iter()
        .map(|(kind, path)| files::read(*kind, path))
        .collect()
}

async fn watch<T, B>(
    state: Weak<Reloading<T>>,
    name: &'static str,
    sources: Vec<(FileKind, PathBuf)>,
    mut loaded: Vec<Vec<u8>>,
    interval: Duration,
    build: B,
) where
    T: Send + Sync + 'static,
    B: Fn(&[Vec<u8>]) -> Result<T, TlsError>,
{
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first tick completes at once, and the files were just read.
    ticker.tick().await;
    // The last error logged, so that a file that stays broken is logged
    // once and not at every tick.
    let mut last_error: Option<String> = None;
    loop {
        ticker.tick().await;
        let Some(state) = state.upgrade() else {
            return;
        };

        let result = read_all(&sources).and_then(|contents| {
            if contents == loaded {
                return Ok(None);
            }
            let config = build(&contents);
            // Remember the new contents even when they are invalid, so the
            // same invalid files are not built again at every tick.
            loaded = contents;
            config.map(Some)
        });
        match result {
            Ok(None) => {}
            Ok(Some(config)) => {
                state.replace(config);
                last_error = None;
                tracing::info!(tls.config = name, "tls files reloaded");
            }
            Err(error) => {
                let message = error.to_string();
                if last_error.as_ref() != Some(&message) {
                    tracing::warn!(
                        tls.config = name,
                        error = %message,
                        "failed to reload tls files, keeping the previous ones"
                    );
                    last_error = Some(message);
                }
            }
        }
    }
}
