//! The static mirror: every feed written under `feeds.mirror_dir` at its URL path (plus a `.gz`
//! copy for nginx `gzip_static`), atomically (temp file + rename), by a thread of its own, in the
//! order the writes were asked for. A file that already holds the bytes is left alone, so asking
//! to write what is there costs a read.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use bytes::Bytes;

enum Job {
    Write {
        path: String,
        body: Bytes,
        /// The gzip copy when the caller made one; else made here if the file must be written.
        gzip: Option<Bytes>,
    },
    /// Called once every write asked for before it is done.
    Then(Box<dyn FnOnce() + Send>),
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
                    match job {
                        Job::Write { path, body, gzip } => {
                            let file = file_for(&dir, &path);
                            if let Err(e) = write_feed(&file, &body, gzip) {
                                tracing::error!(file = %file.display(), error = %e, "cannot write the static mirror");
                            }
                        }
                        Job::Then(f) => f(),
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

    /// Queues `body` (and its gzip copy, if made) to be written at `path` (`/` is written as
    /// `index.html`).
    pub fn write(&self, path: &str, body: Bytes, gzip: Option<Bytes>) {
        let _ = self.tx.send(Job::Write {
            path: path.to_string(),
            body,
            gzip,
        });
    }

    /// Runs `f` on the mirror's thread once the writes queued before are done.
    pub fn after_written(&self, f: impl FnOnce() + Send + 'static) {
        let _ = self.tx.send(Job::Then(Box::new(f)));
    }
}

/// Writes `body` at `file` and its gzip copy beside it, unless `file` holds `body` already and
/// the copy is there.
fn write_feed(file: &Path, body: &[u8], gzip: Option<Bytes>) -> std::io::Result<()> {
    let gz = gz_name(file);
    if holds(file, body) && gz.exists() {
        return Ok(());
    }
    let gzip = match gzip {
        Some(g) => g,
        None => Bytes::from(compress(body)?),
    };
    // The .gz copy first: once the plain file shows the new bytes, so does its copy.
    write_atomic(&gz, &gzip)?;
    write_atomic(file, body)
}

/// Whether `file` holds exactly `body`.
pub fn holds(file: &Path, body: &[u8]) -> bool {
    match std::fs::metadata(file) {
        Ok(m) if m.len() == body.len() as u64 => std::fs::read(file).is_ok_and(|b| b == body),
        _ => false,
    }
}

fn compress(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::new(6),
    );
    encoder.write_all(body)?;
    encoder.finish()
}

pub fn file_for(dir: &Path, path: &str) -> PathBuf {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        dir.join("index.html")
    } else {
        dir.join(rel)
    }
}

pub fn gz_name(file: &Path) -> PathBuf {
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
