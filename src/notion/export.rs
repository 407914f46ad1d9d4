//! Reading a Notion "Markdown & CSV" export: the `.csv` itself, the export `.zip`, or the zip of
//! `-Part-N.zip` files that large exports are. The reader finds the database's CSV (preferring
//! `<Name> <id>_all.csv`, which holds every row and property, over the view's `<Name> <id>.csv`),
//! reads it by header name, and returns each row with its spreadsheet row number so that a
//! broken line is reported and the rest still read.
//!
//! Exports run to gigabytes, nearly all of it attachments, so archives are never loaded whole:
//! the zip directories are read to find the CSVs, only the chosen CSV is decompressed, and an
//! attachment's bytes are never read. A Part zip stored uncompressed in the outer zip (the usual
//! case) is opened in place; a compressed one is decompressed once to an unlinked temporary
//! file. Memory therefore does not grow with the size of the export or its attachments.
//!
//! An export of several databases (a workspace or teamspace export) is read only when one is
//! named ([`read_export_database`]); otherwise the error lists the databases found.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::mapping::{RecordError, RecordSource};
use super::row::{Cell, Row};

/// An export that could not be read at all (a bad row is a [`RecordError`] instead).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not a readable zip archive: {source}")]
    Zip {
        path: PathBuf,
        source: zip::result::ZipError,
    },
    #[error(
        "{path} holds no database CSV; a Notion export made with \"Markdown & CSV\" is expected"
    )]
    NoCsv { path: PathBuf },
    #[error("{path} holds several databases: {}; choose one with --database NAME", .databases.join("; "))]
    SeveralDatabases {
        path: PathBuf,
        /// Each database found: `Title [id] (where)`.
        databases: Vec<String>,
    },
    #[error("{path} has no database named {wanted:?}; it holds: {}", .databases.join("; "))]
    NoSuchDatabase {
        path: PathBuf,
        wanted: String,
        databases: Vec<String>,
    },
    #[error("--database {wanted:?} matches several databases in {path}: {}; give more of the name or the database's ID", .databases.join("; "))]
    AmbiguousDatabase {
        path: PathBuf,
        wanted: String,
        databases: Vec<String>,
    },
    #[error("{path}: the header row cannot be read: {message}")]
    Header { path: PathBuf, message: String },
    #[error("{path} has a file type this reader does not know; give a .csv or a .zip")]
    UnknownType { path: PathBuf },
}

/// The rows of one exported database.
#[derive(Debug)]
pub struct ExportTable {
    /// Where the CSV was found (`file.zip!/dir/Sales <id>_all.csv` for archives).
    pub csv_name: String,
    /// The database read: its title and, when the file name has one, its ID.
    pub database: String,
    pub headers: Vec<String>,
    /// Spreadsheet row number (header = 1) and the row, or why it could not be read.
    /// Blank rows are left out.
    pub rows: Vec<(u64, Result<Row, RecordError>)>,
}

/// Reads a `.csv` or a Notion export `.zip` (nested `-Part-N.zip` archives included) holding
/// one database (row pages' inline databases aside).
pub fn read_export(path: &Path) -> Result<ExportTable, ExportError> {
    read_export_database(path, None)
}

/// [`read_export`] choosing the database by `database`: its title exactly or a prefix of it
/// (case-insensitive), or its ID. A plain `.csv` is one database and `database` is not checked.
pub fn read_export_database(
    path: &Path,
    database: Option<&str>,
) -> Result<ExportTable, ExportError> {
    let io_err = |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("csv") => {
            let bytes = std::fs::read(path).map_err(io_err)?;
            let mut table = read_csv(&bytes, path.display().to_string(), path)?;
            table.database = describe_database(&path.display().to_string());
            Ok(table)
        }
        Some("zip") => {
            let file = File::open(path).map_err(io_err)?;
            let len = file.metadata().map_err(io_err)?.len();
            let mut walk = Walk {
                path,
                archives: vec![Window::new(Arc::new(file), 0, len)],
                csvs: Vec::new(),
            };
            walk.visit(0, "", 0, true)?;
            let chosen = choose_csv(&walk.csvs, database, path)?;
            let entry = &walk.csvs[chosen];
            let bytes = walk.read_entry(entry)?;
            let mut table = read_csv(&bytes, format!("{}!/{}", path.display(), entry.name), path)?;
            table.database = describe_database(&entry.name);
            Ok(table)
        }
        _ => Err(ExportError::UnknownType {
            path: path.to_path_buf(),
        }),
    }
}

/// A byte range of a file read with positioned reads: an archive inside an archive, opened
/// where it lies.
#[derive(Clone)]
struct Window {
    file: Arc<File>,
    start: u64,
    len: u64,
    pos: u64,
}

impl Window {
    fn new(file: Arc<File>, start: u64, len: u64) -> Self {
        Self {
            file,
            start,
            len,
            pos: 0,
        }
    }
}

impl Read for Window {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let remaining = self.len.saturating_sub(self.pos);
        let n = (buf.len() as u64).min(remaining) as usize;
        if n == 0 {
            return Ok(0);
        }
        let read = self.file.read_at(&mut buf[..n], self.start + self.pos)?;
        self.pos += read as u64;
        Ok(read)
    }
}

impl Seek for Window {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => i128::from(n),
            SeekFrom::End(d) => i128::from(self.len) + i128::from(d),
            SeekFrom::Current(d) => i128::from(self.pos) + i128::from(d),
        };
        self.pos = u64::try_from(target)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

/// A CSV found inside the archives.
struct CsvEntry {
    /// Path inside the archive(s), nested archives joined with `!/`.
    name: String,
    /// Which of [`Walk::archives`] holds it, and its index there.
    archive: usize,
    index: usize,
}

/// The archives of one export (the file, then the Part zips inside it) and the CSVs in them.
struct Walk<'a> {
    path: &'a Path,
    archives: Vec<Window>,
    csvs: Vec<CsvEntry>,
}

/// Nested archives deeper than this are user attachments, not export parts.
const MAX_ZIP_DEPTH: usize = 3;

impl Walk<'_> {
    fn zip_err(&self, source: zip::result::ZipError) -> ExportError {
        ExportError::Zip {
            path: self.path.to_path_buf(),
            source,
        }
    }

    fn io_err(&self, source: io::Error) -> ExportError {
        ExportError::Io {
            path: self.path.to_path_buf(),
            source,
        }
    }

    fn open(&self, archive: usize) -> zip::result::ZipResult<zip::ZipArchive<BufReader<Window>>> {
        zip::ZipArchive::new(BufReader::new(self.archives[archive].clone()))
    }

    /// Lists the CSVs of archive `archive` and of the archives inside it. Errors in nested
    /// archives are not fatal (`outer` false): a zip that does not open is an attachment.
    fn visit(
        &mut self,
        archive: usize,
        prefix: &str,
        depth: usize,
        outer: bool,
    ) -> Result<(), ExportError> {
        let mut zip = match self.open(archive) {
            Ok(zip) => zip,
            Err(e) if outer => return Err(self.zip_err(e)),
            Err(_) => return Ok(()),
        };
        for index in 0..zip.len() {
            let mut entry = match zip.by_index(index) {
                Ok(entry) => entry,
                Err(e) if outer => return Err(self.zip_err(e)),
                Err(_) => continue,
            };
            let name = entry.name().to_string();
            if entry.is_dir() || is_junk(&name) {
                continue;
            }
            let lower = name.to_ascii_lowercase();
            if lower.ends_with(".csv") {
                self.csvs.push(CsvEntry {
                    name: format!("{prefix}{name}"),
                    archive,
                    index,
                });
            } else if lower.ends_with(".zip") && depth < MAX_ZIP_DEPTH {
                let nested = if entry.compression() == zip::CompressionMethod::Stored {
                    let parent = &self.archives[archive];
                    Window::new(
                        parent.file.clone(),
                        parent.start + entry.data_start(),
                        entry.compressed_size(),
                    )
                } else {
                    let spooled = spool(&mut entry).map_err(|e| self.io_err(e))?;
                    let len = spooled.metadata().map_err(|e| self.io_err(e))?.len();
                    Window::new(Arc::new(spooled), 0, len)
                };
                drop(entry);
                self.archives.push(nested);
                let child = self.archives.len() - 1;
                self.visit(child, &format!("{prefix}{name}!/"), depth + 1, false)?;
            }
        }
        Ok(())
    }

    fn read_entry(&self, csv: &CsvEntry) -> Result<Vec<u8>, ExportError> {
        let mut zip = self.open(csv.archive).map_err(|e| self.zip_err(e))?;
        let mut entry = zip.by_index(csv.index).map_err(|e| self.zip_err(e))?;
        let mut bytes = Vec::with_capacity(entry.size().min(1 << 30) as usize);
        entry.read_to_end(&mut bytes).map_err(|e| self.io_err(e))?;
        Ok(bytes)
    }
}

/// Decompresses a compressed Part zip to a temporary file, unlinked at once so that it
/// disappears with the last handle whatever happens.
fn spool(entry: &mut impl Read) -> io::Result<File> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "stockx-sync-part-{}-{}.zip",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mut file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    let _ = std::fs::remove_file(&path);
    io::copy(entry, &mut file)?;
    Ok(file)
}

/// macOS re-zipping leftovers.
fn is_junk(name: &str) -> bool {
    name.starts_with("__MACOSX/")
        || name.contains("/__MACOSX/")
        || name
            .rsplit('/')
            .next()
            .is_some_and(|f| f.starts_with("._") || f == ".DS_Store")
}

/// `Sales 0123…cdef_all.csv` → (`Sales`, Some(id), true). Files without an ID are accepted.
fn parse_csv_file_name(name: &str) -> (String, Option<String>, bool) {
    let file = name.rsplit(['/', '!']).next().unwrap_or(name);
    let stem = &file[..file.len().saturating_sub(4)];
    let (stem, all) = match stem.strip_suffix("_all") {
        Some(s) => (s, true),
        None => (stem, false),
    };
    if let Some((title, id)) = stem.rsplit_once(' ') {
        if id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()) {
            return (title.to_string(), Some(id.to_ascii_lowercase()), all);
        }
    }
    (stem.to_string(), None, all)
}

/// `Sales [0123…cdef]`, or the title alone.
fn describe_database(csv_name: &str) -> String {
    match parse_csv_file_name(csv_name) {
        (title, Some(id), _) => format!("{title} [{id}]"),
        (title, None, _) => title,
    }
}

fn depth_of(name: &str) -> usize {
    name.rsplit("!/")
        .next()
        .unwrap_or(name)
        .matches('/')
        .count()
}

/// The CSVs of one database (the view's and the `_all` one), as found in the export.
struct Database {
    title: String,
    id: Option<String>,
    /// Indices into the CSV list.
    csvs: Vec<usize>,
    depth: usize,
}

impl Database {
    fn describe(&self, csvs: &[CsvEntry]) -> String {
        let first = &csvs[self.csvs[0]].name;
        let folder = match first.rfind('/') {
            Some(cut) => &first[..cut],
            None => "top level",
        };
        match &self.id {
            Some(id) => format!("{} [{id}] ({folder})", self.title),
            None => format!("{} ({folder})", self.title),
        }
    }
}

fn group_databases(csvs: &[CsvEntry]) -> Vec<Database> {
    let mut databases: Vec<Database> = Vec::new();
    for (i, csv) in csvs.iter().enumerate() {
        let (title, id, _) = parse_csv_file_name(&csv.name);
        let depth = depth_of(&csv.name);
        let same = |d: &Database| match (&d.id, &id) {
            (Some(a), Some(b)) => a == b,
            (None, None) => d.title == title,
            _ => false,
        };
        match databases.iter_mut().find(|d| same(d)) {
            Some(d) => {
                d.csvs.push(i);
                d.depth = d.depth.min(depth);
            }
            None => databases.push(Database {
                title,
                id,
                csvs: vec![i],
                depth,
            }),
        }
    }
    databases
}

/// The CSV to read: of the named database, or of the only database at the top of the export
/// (deeper CSVs belong to databases inside row pages); its `_all.csv` when there is one.
fn choose_csv(csvs: &[CsvEntry], wanted: Option<&str>, path: &Path) -> Result<usize, ExportError> {
    let databases = group_databases(csvs);
    let Some(min_depth) = databases.iter().map(|d| d.depth).min() else {
        return Err(ExportError::NoCsv {
            path: path.to_path_buf(),
        });
    };
    let describe =
        |list: &[&Database]| -> Vec<String> { list.iter().map(|d| d.describe(csvs)).collect() };
    let all: Vec<&Database> = databases.iter().collect();
    let chosen: &Database = match wanted.map(str::trim).filter(|w| !w.is_empty()) {
        Some(wanted) => {
            let lower = wanted.to_lowercase();
            let compact: String = lower.chars().filter(|c| *c != '-').collect();
            let exact: Vec<&Database> = databases
                .iter()
                .filter(|d| d.title.to_lowercase() == lower || d.id.as_deref() == Some(&compact))
                .collect();
            let candidates: Vec<&Database> = if exact.is_empty() {
                databases
                    .iter()
                    .filter(|d| d.title.to_lowercase().starts_with(&lower))
                    .collect()
            } else {
                exact
            };
            // The same title at several depths: the shallowest is the exported database.
            let shallowest = candidates.iter().map(|d| d.depth).min();
            let top: Vec<&Database> = candidates
                .iter()
                .copied()
                .filter(|d| Some(d.depth) == shallowest)
                .collect();
            match top[..] {
                [] => {
                    return Err(ExportError::NoSuchDatabase {
                        path: path.to_path_buf(),
                        wanted: wanted.to_string(),
                        databases: describe(&all),
                    })
                }
                [one] => one,
                _ => {
                    return Err(ExportError::AmbiguousDatabase {
                        path: path.to_path_buf(),
                        wanted: wanted.to_string(),
                        databases: describe(&candidates),
                    })
                }
            }
        }
        None => {
            let top: Vec<&Database> = databases.iter().filter(|d| d.depth == min_depth).collect();
            match top[..] {
                [one] => one,
                _ => {
                    return Err(ExportError::SeveralDatabases {
                        path: path.to_path_buf(),
                        databases: describe(&all),
                    })
                }
            }
        }
    };
    let best = chosen
        .csvs
        .iter()
        .copied()
        .min_by_key(|&i| {
            let name = &csvs[i].name;
            (!parse_csv_file_name(name).2, depth_of(name))
        })
        .unwrap_or(chosen.csvs[0]);
    tracing::info!(
        database = %chosen.describe(csvs),
        csv = %csvs[best].name,
        databases = databases.len(),
        "reading the export's database"
    );
    Ok(best)
}

/// Parses export CSV bytes: header by name, BOM-tolerant, one result per non-blank row.
pub fn read_csv(bytes: &[u8], csv_name: String, path: &Path) -> Result<ExportTable, ExportError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(bytes);
    let header_err = |message: String| ExportError::Header {
        path: path.to_path_buf(),
        message,
    };
    let headers: Vec<String> = reader
        .byte_headers()
        .map_err(|e| header_err(e.to_string()))?
        .iter()
        .map(|h| {
            String::from_utf8_lossy(h)
                .trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
                .to_string()
        })
        .collect();
    if headers.iter().all(String::is_empty) {
        return Err(header_err("the file is empty".into()));
    }

    let mut rows = Vec::new();
    let mut record = csv::ByteRecord::new();
    // Spreadsheet numbering: one row per record plus one per blank line, which the csv crate
    // skips without counting; a record's position is where the reader started, blank lines
    // included, so they are counted from there.
    let mut row_number: u64 = 1;
    let mut previous_end = reader.position().byte();
    let blank_lines_before = |start: u64| blank_lines_at(bytes, start as usize);
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let start = record.position().map_or(previous_end, |p| p.byte());
                row_number += 1 + blank_lines_before(start);
                previous_end = reader.position().byte();
                let origin = RecordSource::CsvRow { row: row_number };
                match row_from_record(&headers, &record, &origin) {
                    Ok(row) if row.is_blank() => {}
                    result => rows.push((row_number, result)),
                }
            }
            Err(e) => {
                let start = e.position().map_or(previous_end, |p| p.byte());
                row_number += 1 + blank_lines_before(start);
                previous_end = reader.position().byte();
                let origin = RecordSource::CsvRow { row: row_number };
                rows.push((
                    row_number,
                    Err(RecordError::row(
                        origin,
                        format!("the line cannot be read as CSV: {e}"),
                    )),
                ));
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    break;
                }
            }
        }
    }
    Ok(ExportTable {
        database: describe_database(&csv_name),
        csv_name,
        headers,
        rows,
    })
}

/// Blank lines between the end of one record and the start of the next, `start` being where
/// the reader began the next record. A CRLF line end is one line: the reader stops a record at
/// the `\r` and begins the next at its `\n`, which is that record's end, not a blank line.
fn blank_lines_at(bytes: &[u8], start: usize) -> u64 {
    let mut i = start;
    if i > 0 && bytes.get(i - 1) == Some(&b'\r') && bytes.get(i) == Some(&b'\n') {
        i += 1;
    }
    let mut lines = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => i += 2,
            b'\r' | b'\n' => i += 1,
            _ => break,
        }
        lines += 1;
    }
    lines
}

fn row_from_record(
    headers: &[String],
    record: &csv::ByteRecord,
    origin: &RecordSource,
) -> Result<Row, RecordError> {
    if record.len() != headers.len() {
        let blank = record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace));
        if blank {
            return Ok(Row::new());
        }
        return Err(RecordError {
            origin: origin.clone(),
            column: None,
            raw: Some(line_text(record)),
            message: format!(
                "the line has {} fields but the header has {}; is a value with a comma not quoted?",
                record.len(),
                headers.len()
            ),
            order_number: None,
        });
    }
    let mut row = Row::new();
    for (header, field) in headers.iter().zip(record.iter()) {
        let text = std::str::from_utf8(field).map_err(|_| RecordError {
            origin: origin.clone(),
            column: Some(header.clone()),
            raw: Some(String::from_utf8_lossy(field).into_owned()),
            message: "the value is not valid UTF-8".into(),
            order_number: None,
        })?;
        if !header.is_empty() {
            row.insert(header.clone(), Cell::Text(text.to_string()));
        }
    }
    Ok(row)
}

/// The record's fields joined by commas again, shortened for messages.
fn line_text(record: &csv::ByteRecord) -> String {
    let fields: Vec<String> = record
        .iter()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    let line = fields.join(",");
    match line.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> ExportTable {
        read_csv(text.as_bytes(), "test.csv".into(), Path::new("test.csv")).unwrap()
    }

    #[test]
    fn file_names_of_exports() {
        assert_eq!(
            parse_csv_file_name("Export/Sales 2f4c8b43e5658142a060f4e3c920e7f4_all.csv"),
            (
                "Sales".to_string(),
                Some("2f4c8b43e5658142a060f4e3c920e7f4".to_string()),
                true
            )
        );
        assert_eq!(
            parse_csv_file_name("Sales.csv"),
            ("Sales".to_string(), None, false)
        );
        assert!(is_junk("__MACOSX/Sales._x.csv"));
        assert!(is_junk("dir/._Sales.csv"));
        assert!(!is_junk("Sales.csv"));
    }

    #[test]
    fn row_numbers_count_like_a_spreadsheet() {
        let t = table("a,b\n1,2\n\n3,4\n\"multi\nline\",5\n6,7\n");
        let numbers: Vec<u64> = t.rows.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, vec![2, 4, 5, 6]);
    }

    #[test]
    fn crlf_rows_count_like_a_spreadsheet() {
        let t = table("\u{feff}a,b\r\n1,2\r\n\r\n3,4\r\n\"multi\r\nline\",5\r\n6,7\r\n8,9,10\r\n");
        let numbers: Vec<u64> = t.rows.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, vec![2, 4, 5, 6, 7]);
        let broken = t.rows[4].1.as_ref().unwrap_err();
        assert!(broken.to_string().starts_with("row 7:"), "{broken}");
        let t = table("a,b\r1,2\r3,4\r");
        let numbers: Vec<u64> = t.rows.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, vec![2, 3], "old Mac line ends");
    }

    #[test]
    fn blank_and_broken_rows() {
        let t = table("a,b\n1,2\n,\n3,4,5\n6,7\n");
        let numbers: Vec<u64> = t.rows.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, vec![2, 4, 5]);
        let broken = t.rows[1].1.as_ref().unwrap_err();
        assert!(broken.to_string().starts_with("row 4:"), "{broken}");
        assert!(t.rows[2].1.is_ok());
    }
}
