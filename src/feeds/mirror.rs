//! The static mirror: every feed written under `feeds.mirror_dir` at its URL path (plus a `.gz`
//! copy for nginx `gzip_static`), atomically (temp file + rename), by a thread of its own.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use bytes::Bytes;

use super::cache::Rendered;

struct Job {
    path: String,
    body: Bytes,
    gzip: Option<Bytes>,
}

pub struct Mirror {
    tx: mpsc::Sender<Job>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Mirror {
    pub fn start(dir: PathBuf) -> Mirror {
        let (tx, rx) = mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("mirror".into())
            .spawn(move || {
                for job in rx {
                    let file = file_for(&dir, &job.path);
                    // The .gz copy first: once the plain file shows the new bytes, so does its copy.
                    let gz = gz_name(&file);
                    let result = match &job.gzip {
                        Some(gzip) => write_atomic(&gz, gzip),
                        None => match std::fs::remove_file(&gz) {
                            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                            _ => Ok(()),
                        },
                    };
                    if let Err(e) = result.and_then(|_| write_atomic(&file, &job.body)) {
                        tracing::error!(file = %file.display(), error = %e, "cannot write the static mirror");
                    }
                }
            });
        let thread = spawned
            .map_err(|e| tracing::error!(error = %e, "cannot start the static mirror writer"))
            .ok();
        Mirror { tx, thread }
    }

    /// Writes what is queued, then stops the thread.
    pub fn finish(self) {
        let Mirror { tx, thread } = self;
        drop(tx);
        if let Some(t) = thread {
            let _ = t.join();
        }
    }

    /// Queues `rendered` to be written at `path` (`/` is written as `index.html`).
    pub fn write(&self, path: &str, rendered: &Rendered) {
        let _ = self.tx.send(Job {
            path: path.to_string(),
            body: rendered.identity.body.clone(),
            gzip: rendered.gzip.as_ref().map(|g| g.body.clone()),
        });
    }
}

pub fn file_for(dir: &Path, path: &str) -> PathBuf {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        dir.join("index.html")
    } else {
        dir.join(rel)
    }
}

fn gz_name(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".gz");
    PathBuf::from(name)
}

/// Writes `bytes` to a temp file beside `file` and renames it over `file`, so a reader sees the
/// old bytes or the new ones, never half of either.
pub fn write_atomic(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    // Temp files start as 0600; the mirror is for a web server running as another user.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.as_file().sync_data()?;
    tmp.persist(file).map_err(|e| e.error)?;
    Ok(())
}
