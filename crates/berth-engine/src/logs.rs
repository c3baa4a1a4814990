//! The container log in Docker's json-file format: one JSON object per line,
//! `{"log":"hello\n","stream":"stdout","time":"2026-11-28T09:30:00.123456789Z"}`; and its reader for
//! `berth logs` (tail, timestamps, follow).

use serde::{Deserialize, Serialize};
use std::io::{BufRead, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Which output stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Errors reading a log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// I/O on the log file.
    #[error("{op} log {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// A line longer than this without a newline is written as a partial entry, as Docker does at 16 KiB.
const MAX_LINE: usize = 16 * 1024;

/// Appends entries to a container's JSON log. Write errors are swallowed after the first (the
/// container must not die because its log disk is full), and counted.
pub struct LogWriter {
    file: std::fs::File,
    partial: [Vec<u8>; 2],
    /// Number of failed writes.
    pub errors: u64,
}

#[derive(Serialize)]
struct EntryOut<'a> {
    log: &'a str,
    stream: &'a str,
    time: &'a str,
}

/// One log entry as read back.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// The text, with its newline.
    pub log: String,
    /// "stdout" or "stderr".
    pub stream: String,
    /// RFC 3339 with nanoseconds.
    pub time: String,
}

impl LogWriter {
    /// Opens (appending, creating) the log at `path`.
    pub fn open(path: &Path) -> Result<LogWriter, LogError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| LogError::Io {
                op: "open",
                path: path.to_owned(),
                source,
            })?;
        Ok(LogWriter {
            file,
            partial: [Vec::new(), Vec::new()],
            errors: 0,
        })
    }

    fn emit(&mut self, stream: Stream, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let time = crate::time::now_rfc3339();
        let entry = EntryOut {
            log: &text,
            stream: stream.name(),
            time: &time,
        };
        let mut out = match serde_json::to_vec(&entry) {
            Ok(v) => v,
            Err(_) => return,
        };
        out.push(b'\n');
        if self.file.write_all(&out).is_err() {
            self.errors += 1;
        }
    }

    /// Adds output bytes; complete lines become entries at once.
    pub fn write(&mut self, stream: Stream, data: &[u8]) {
        let idx = stream as usize;
        let mut rest = data;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.partial[idx]);
            line.extend_from_slice(&rest[..=nl]);
            self.emit(stream, &line);
            rest = &rest[nl + 1..];
        }
        self.partial[idx].extend_from_slice(rest);
        if self.partial[idx].len() >= MAX_LINE {
            let line = std::mem::take(&mut self.partial[idx]);
            self.emit(stream, &line);
        }
    }

    /// Writes what is left of unterminated lines (at exit).
    pub fn finish(&mut self) {
        for (i, s) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
            if !self.partial[i].is_empty() {
                let line = std::mem::take(&mut self.partial[i]);
                self.emit(s, &line);
            }
        }
    }
}

/// How `berth logs` prints.
#[derive(Debug, Clone, Default)]
pub struct LogsOptions {
    /// Keep printing until the container stops.
    pub follow: bool,
    /// Only the last N lines.
    pub tail: Option<usize>,
    /// Prefix each line with its time.
    pub timestamps: bool,
}

fn print_entry(
    e: &Entry,
    timestamps: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<()> {
    let w: &mut dyn Write = if e.stream == "stderr" { err } else { out };
    if timestamps {
        write!(w, "{} ", e.time)?;
    }
    w.write_all(e.log.as_bytes())
}

/// Prints a log; with `follow`, keeps reading new lines while `running()` says the container runs.
pub fn print_log(
    path: &Path,
    opts: &LogsOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
    running: &mut dyn FnMut() -> bool,
) -> Result<(), LogError> {
    let ioe = |op: &'static str| {
        move |source| LogError::Io {
            op,
            path: path.to_owned(),
            source,
        }
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(ioe("open")(e)),
    };
    let mut pos = 0u64;
    if let Some(f) = file {
        let mut reader = std::io::BufReader::new(f);
        let mut entries = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader.read_line(&mut line).map_err(ioe("read"))?;
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            pos += n as u64;
            if let Ok(e) = serde_json::from_str::<Entry>(&line) {
                entries.push(e);
            }
        }
        let skip = opts
            .tail
            .map(|t| entries.len().saturating_sub(t))
            .unwrap_or(0);
        for e in &entries[skip..] {
            print_entry(e, opts.timestamps, out, err).map_err(ioe("print"))?;
        }
        let _ = out.flush();
        let _ = err.flush();
    }
    if !opts.follow {
        return Ok(());
    }
    let mut pending = String::new();
    loop {
        let still_running = running();
        if let Ok(mut f) = std::fs::File::open(path) {
            f.seek(std::io::SeekFrom::Start(pos)).map_err(ioe("seek"))?;
            let mut chunk = String::new();
            let n = f.read_to_string(&mut chunk).map_err(ioe("read"))?;
            pos += n as u64;
            pending.push_str(&chunk);
            while let Some(nl) = pending.find('\n') {
                let line: String = pending.drain(..=nl).collect();
                if let Ok(e) = serde_json::from_str::<Entry>(&line) {
                    print_entry(&e, opts.timestamps, out, err).map_err(ioe("print"))?;
                }
            }
            let _ = out.flush();
            let _ = err.flush();
        }
        if !still_running {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_docker_json_lines_and_reads_them_back() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("x-json.log");
        let mut w = LogWriter::open(&p).unwrap();
        w.write(Stream::Stdout, b"hel");
        w.write(Stream::Stdout, b"lo\nwor");
        w.write(Stream::Stderr, b"oops \"quoted\"\n");
        w.finish();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["log"], "hello\n");
        assert_eq!(v["stream"], "stdout");
        assert!(crate::time::parse_rfc3339(v["time"].as_str().unwrap()).is_some());
        let v: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(
            (v["log"].as_str().unwrap(), v["stream"].as_str().unwrap()),
            ("oops \"quoted\"\n", "stderr")
        );

        let (mut out, mut err) = (Vec::new(), Vec::new());
        print_log(&p, &LogsOptions::default(), &mut out, &mut err, &mut || {
            false
        })
        .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "hello\nwor");
        assert_eq!(String::from_utf8(err).unwrap(), "oops \"quoted\"\n");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        print_log(
            &p,
            &LogsOptions {
                tail: Some(1),
                ..Default::default()
            },
            &mut out,
            &mut err,
            &mut || false,
        )
        .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "wor");
        assert!(err.is_empty());
    }

    #[test]
    fn follow_prints_lines_appended_while_running() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f-json.log");
        let mut w = LogWriter::open(&p).unwrap();
        w.write(Stream::Stdout, b"one\n");
        let mut calls = 0;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        print_log(
            &p,
            &LogsOptions {
                follow: true,
                timestamps: true,
                ..Default::default()
            },
            &mut out,
            &mut err,
            &mut || {
                calls += 1;
                if calls == 1 {
                    w.write(Stream::Stdout, b"two\n");
                }
                calls < 2
            },
        )
        .unwrap();
        let s = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].ends_with("Z one") && lines[1].ends_with("Z two"),
            "{s}"
        );
    }
}
