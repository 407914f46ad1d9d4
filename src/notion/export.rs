//! Reading a Notion "Markdown & CSV" export: the `.csv` itself, the export `.zip`, or the zip of
//! `-Part-N.zip` files that large exports are. The reader finds the database's CSV (preferring
//! `<Name> <id>_all.csv`, which holds every row and property, over the view's `<Name> <id>.csv`),
//! reads it by header name, and returns each row with its spreadsheet row number so that a
//! broken line is reported and the rest still read.

use std::fs::File;
use std::io::{self, Cursor, Read, Seek};
use std::path::{Path, PathBuf};

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
    #[error("{path} holds CSVs of several databases ({}); export the sales database alone", .candidates.join(", "))]
    SeveralDatabases {
        path: PathBuf,
        candidates: Vec<String>,
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
    pub headers: Vec<String>,
    /// Spreadsheet row number (header = 1) and the row, or why it could not be read.
    /// Blank rows are left out.
    pub rows: Vec<(u64, Result<Row, RecordError>)>,
}

/// Reads a `.csv` or a Notion export `.zip` (nested `-Part-N.zip` archives included).
pub fn read_export(path: &Path) -> Result<ExportTable, ExportError> {
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
            read_csv(&bytes, path.display().to_string(), path)
        }
        Some("zip") => {
            let file = File::open(path).map_err(io_err)?;
            let mut found = Vec::new();
            collect_csvs(file, "", path, 0, &mut found)?;
            let chosen = choose_csv(found, path)?;
            read_csv(
                &chosen.bytes,
                format!("{}!/{}", path.display(), chosen.name),
                path,
            )
        }
        _ => Err(ExportError::UnknownType {
            path: path.to_path_buf(),
        }),
    }
}

/// A CSV found inside an archive.
struct FoundCsv {
    /// Path inside the archive(s), nested archives joined with `!/`.
    name: String,
    bytes: Vec<u8>,
}

/// Nested archives deeper than this are user attachments, not export parts.
const MAX_ZIP_DEPTH: usize = 3;

fn collect_csvs<R: Read + Seek>(
    reader: R,
    prefix: &str,
    path: &Path,
    depth: usize,
    found: &mut Vec<FoundCsv>,
) -> Result<(), ExportError> {
    let zip_err = |source| ExportError::Zip {
        path: path.to_path_buf(),
        source,
    };
    let io_err = |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut archive = zip::ZipArchive::new(reader).map_err(zip_err)?;
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(zip_err)?;
        let name = entry.name().to_string();
        if entry.is_dir() || is_junk(&name) {
            continue;
        }
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".csv") {
            let mut bytes = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut bytes).map_err(io_err)?;
            found.push(FoundCsv {
                name: format!("{prefix}{name}"),
                bytes,
            });
        } else if lower.ends_with(".zip") && depth < MAX_ZIP_DEPTH {
            let mut bytes = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut bytes).map_err(io_err)?;
            let nested_prefix = format!("{prefix}{name}!/");
            // A zip that does not open is an attachment of some page, not a part.
            let _ = collect_csvs(Cursor::new(bytes), &nested_prefix, path, depth + 1, found);
        }
    }
    Ok(())
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

fn depth_of(name: &str) -> usize {
    name.rsplit("!/")
        .next()
        .unwrap_or(name)
        .matches('/')
        .count()
}

/// One database's CSV: the shallowest database in the archive, its `_all.csv` if present.
/// Deeper CSVs belong to databases inside row pages.
fn choose_csv(found: Vec<FoundCsv>, path: &Path) -> Result<FoundCsv, ExportError> {
    let Some(min_depth) = found.iter().map(|f| depth_of(&f.name)).min() else {
        return Err(ExportError::NoCsv {
            path: path.to_path_buf(),
        });
    };
    let mut top: Vec<FoundCsv> = found
        .into_iter()
        .filter(|f| depth_of(&f.name) == min_depth)
        .collect();
    let key = |f: &FoundCsv| {
        let (title, id, _) = parse_csv_file_name(&f.name);
        id.unwrap_or(title)
    };
    let mut databases: Vec<String> = top.iter().map(key).collect();
    databases.sort();
    databases.dedup();
    if databases.len() > 1 {
        return Err(ExportError::SeveralDatabases {
            path: path.to_path_buf(),
            candidates: top.iter().map(|f| f.name.clone()).collect(),
        });
    }
    top.sort_by_key(|f| !parse_csv_file_name(&f.name).2);
    Ok(top.swap_remove(0))
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
    let blank_lines_before = |start: u64| -> u64 {
        let from = bytes.get(start as usize..).unwrap_or_default();
        from.iter()
            .take_while(|&&b| b == b'\n' || b == b'\r')
            .filter(|&&b| b == b'\n')
            .count() as u64
    };
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
        csv_name,
        headers,
        rows,
    })
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
    fn blank_and_broken_rows() {
        let t = table("a,b\n1,2\n,\n3,4,5\n6,7\n");
        let numbers: Vec<u64> = t.rows.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, vec![2, 4, 5]);
        let broken = t.rows[1].1.as_ref().unwrap_err();
        assert!(broken.to_string().starts_with("row 4:"), "{broken}");
        assert!(t.rows[2].1.is_ok());
    }
}
