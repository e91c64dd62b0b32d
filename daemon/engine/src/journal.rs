//! The append-only JSON-lines journal of decision records.
//!
//! Each record is serialised whole and written with one `write` on a file opened in append
//! mode, so a crash or a `kill -9` leaves at worst one partial line at the end. The reader
//! skips a line it cannot parse (and says how many it skipped) instead of failing; a writer
//! that reopens a journal whose last line is torn first ends that line, so the next record
//! starts clean.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::record::Record;

pub struct Journal {
    file: File,
    sync: bool,
}

impl Journal {
    /// Opens (or creates) the journal for appending. With `sync`, each record is flushed to
    /// the disk before the call returns (survives power loss, costs an fsync per record);
    /// without, it survives the process being killed.
    pub fn open(path: &Path, sync: bool) -> io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new().create(true).append(true).read(true).open(path)?;
        let len = file.metadata()?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
            }
        }
        Ok(Journal { file, sync })
    }

    pub fn append(&mut self, record: &Record) -> io::Result<()> {
        self.append_line(&serde_json::to_string(record).map_err(io::Error::other)?)
    }

    /// Appends a record already serialised as one line of JSON, with one `write`.
    pub fn append_line(&mut self, json: &str) -> io::Result<()> {
        let mut line = Vec::with_capacity(json.len() + 1);
        line.extend_from_slice(json.as_bytes());
        line.push(b'\n');
        self.file.write_all(&line)?;
        if self.sync {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

/// What reading a journal found.
#[derive(Debug, Default)]
pub struct JournalContents {
    pub records: Vec<Record>,
    /// Lines that did not parse, with their 1-based number and the error: normally only a
    /// last line torn by a crash.
    pub skipped: Vec<(usize, String)>,
}

/// Reads every intact record.
pub fn read(path: &Path) -> io::Result<JournalContents> {
    let reader = BufReader::new(File::open(path)?);
    let mut contents = JournalContents::default();
    for (index, line) in reader.split(b'\n').enumerate() {
        let line = line?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Record>(&line) {
            Ok(record) => contents.records.push(record),
            Err(error) => contents.skipped.push((index + 1, error.to_string())),
        }
    }
    Ok(contents)
}
