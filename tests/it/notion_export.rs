//! Notion exports as real ones are: CRLF line ends with a BOM, money in any currency, exports
//! of several databases, Part zips holding large attachments, and exports whose optional
//! columns are not there. Reader and mapping only (no database); the command-level checks of
//! the same files are in `backfill.rs`.

use std::io::Write;
use std::path::{Path, PathBuf};

use rust_decimal::Decimal;
use stockx_sync::notion::export::{read_export, read_export_database, ExportError, ExportTable};
use stockx_sync::notion::mapping::{check_columns, map_row, Mapped, Mapping, RecordSource};

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

pub const HEADER: &str = "Sale ID,Delivery Date,Name,Net Buy,Net Sale,Profit,Purchase Date,ROI,SKU,Sale Date,Sale Platform,Sale Price,Size,Supplier";

/// One export line in the `_all.csv` column order of [`HEADER`].
pub fn line(order: &str, net_buy: &str, net_sale: &str) -> String {
    format!(
        "{order},,Nike Dunk Low Panda,\"{net_buy}\",\"{net_sale}\",,\"October 1, 2023\",30%,DD1391-100,\"November 5, 2023 3:00 PM\",StockX,,US 10,\"Zalando (https://www.notion.so/Zalando-0123456789abcdef0123456789abcdef?pvs=21)\""
    )
}

/// A CSV as Notion writes it: BOM, CRLF line ends.
pub fn crlf_export(lines: &[String]) -> Vec<u8> {
    let mut text = String::from("\u{feff}");
    text.push_str(HEADER);
    text.push_str("\r\n");
    for l in lines {
        text.push_str(l);
        text.push_str("\r\n");
    }
    text.into_bytes()
}

fn outcomes(table: &ExportTable, mapping: &Mapping) -> Vec<(u64, Result<Mapped, String>)> {
    table
        .rows
        .iter()
        .map(|(n, row)| {
            let origin = RecordSource::CsvRow { row: *n };
            let mapped = row
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|row| map_row(mapping, &origin, row))
                .map_err(|e| e.to_string());
            (*n, mapped)
        })
        .collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_crlf_export_names_rows_as_a_spreadsheet_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines: Vec<String> = (1..=8)
        .map(|n| line(&format!("7540000{n}-7640000{n}"), "€100.00", "€150.00"))
        .collect();
    // Row 5 of the sheet (header = 1) and row 9 carry bad amounts; a multi-line note in row 3.
    lines[3] = line("75400004-76400004", "€100.00", "€twelve");
    lines[1] = lines[1].replace("Nike Dunk Low Panda", "\"Nike Dunk\r\nLow Panda\"");
    lines[7] = line("75400008-76400008", "x€", "€150.00");
    let path = write(dir.path(), "Sales.csv", &crlf_export(&lines));
    let table = read_export(&path).unwrap();
    let numbers: Vec<u64> = table.rows.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, (2..=9).collect::<Vec<u64>>());
    let errors: Vec<String> = outcomes(&table, &Mapping::default())
        .into_iter()
        .filter_map(|(_, r)| r.err())
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("row 5, column \"Net Sale\""),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("row 9, column \"Net Buy\""),
        "{errors:?}"
    );
}

#[test]
fn money_in_any_currency_reads_as_the_amount() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("₱1,234.56", "1234.56"),
        ("R$ 1.234,56", "1234.56"),
        ("CHF 12.50", "12.50"),
        ("12,50 zł", "12.50"),
        ("฿1,200.00", "1200.00"),
        ("1 234,50 Kč", "1234.50"),
        ("₴99,90", "99.90"),
        ("US$ 5.00", "5.00"),
    ];
    let lines: Vec<String> = cases
        .iter()
        .enumerate()
        .map(|(i, (money, _))| line(&format!("7550000{i}-7650000{i}"), money, money))
        .collect();
    let path = write(dir.path(), "Sales.csv", &crlf_export(&lines));
    let table = read_export(&path).unwrap();
    let got: Vec<Decimal> = outcomes(&table, &Mapping::default())
        .into_iter()
        .map(|(n, r)| match r {
            Ok(Mapped::Sale(s)) => {
                assert_eq!(s.purchase_price, s.net_proceeds);
                s.purchase_price
            }
            other => panic!("row {n}: {other:?}"),
        })
        .collect();
    let wanted: Vec<Decimal> = cases.iter().map(|(_, d)| dec(d)).collect();
    assert_eq!(got, wanted);
}

#[test]
fn optional_columns_absent_from_the_export_are_empty() {
    let dir = tempfile::tempdir().unwrap();
    // A view export without Sale Price, Profit, ROI, Purchase Date, Delivery Date.
    let text = "\u{feff}Sale ID,Name,Net Buy,Net Sale,SKU,Sale Date,Sale Platform,Size,Supplier\r\n\
                75600001-76600001,Dunk,€100.00,€150.00,DD1391-100,\"November 5, 2023\",StockX,US 10,Zalando\r\n";
    let path = write(dir.path(), "Sales.csv", text.as_bytes());
    let table = read_export(&path).unwrap();
    check_columns(&Mapping::default(), &table.headers).unwrap();
    let [(_, Ok(Mapped::Sale(sale)))] = &outcomes(&table, &Mapping::default())[..] else {
        panic!("one sale expected")
    };
    assert_eq!(sale.net_proceeds, dec("150.00"));
    assert_eq!(
        (
            sale.sale_price,
            sale.profit,
            sale.roi,
            sale.purchase_date,
            sale.delivered_at
        ),
        (None, None, None, None, None)
    );
    // Required columns still stop the run.
    let no_sale_date = text.replace("Sale Date,", "Sold,");
    let path = write(dir.path(), "Sales2.csv", no_sale_date.as_bytes());
    let table = read_export(&path).unwrap();
    let e = check_columns(&Mapping::default(), &table.headers).unwrap_err();
    assert!(
        e.to_string().contains("\"Sale Date\" (mapped as sold_at)"),
        "{e}"
    );
}

pub fn write_zip(path: &Path, entries: &[(&str, Vec<u8>)]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

/// A workspace export: five databases at the top, one inside a row page.
pub fn five_databases(dir: &Path) -> PathBuf {
    let path = dir.join("Export-5d6e.zip");
    let sales = crlf_export(&[line("75700001-76700001", "€100.00", "€150.00")]);
    let archive = crlf_export(&[
        line("75700002-76700002", "€1.00", "€2.00"),
        line("75700003-76700003", "€1.00", "€2.00"),
    ]);
    let other = b"Name,Notes\r\nx,y\r\n".to_vec();
    write_zip(
        &path,
        &[
            ("Workspace 00000000000000000000000000000001/Sales 0123456789abcdef0123456789abcdef.csv", sales.clone()),
            ("Workspace 00000000000000000000000000000001/Sales 0123456789abcdef0123456789abcdef_all.csv", sales),
            ("Workspace 00000000000000000000000000000001/Sales Archive 1123456789abcdef0123456789abcdef_all.csv", archive),
            ("Workspace 00000000000000000000000000000001/Suppliers 2123456789abcdef0123456789abcdef_all.csv", other.clone()),
            ("Workspace 00000000000000000000000000000001/Inventory 3123456789abcdef0123456789abcdef_all.csv", other.clone()),
            ("Workspace 00000000000000000000000000000001/Expenses 4123456789abcdef0123456789abcdef.csv", other.clone()),
            ("Workspace 00000000000000000000000000000001/Sales 0123456789abcdef0123456789abcdef/Row 5123456789abcdef0123456789abcdef/Sales 6123456789abcdef0123456789abcdef.csv", other),
        ],
    );
    path
}

#[test]
fn a_multi_database_export_is_read_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = five_databases(dir.path());

    let e = read_export(&path).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, ExportError::SeveralDatabases { .. }), "{text}");
    for name in [
        "Sales [0123",
        "Sales Archive",
        "Suppliers",
        "Inventory",
        "Expenses",
        "--database",
    ] {
        assert!(text.contains(name), "lists {name}: {text}");
    }

    // An exact title wins over titles it is a prefix of; the inline database of the same
    // name inside a row page is not the exported one.
    let table = read_export_database(&path, Some("sales")).unwrap();
    assert!(
        table
            .csv_name
            .ends_with("Sales 0123456789abcdef0123456789abcdef_all.csv"),
        "{}",
        table.csv_name
    );
    assert_eq!(table.database, "Sales [0123456789abcdef0123456789abcdef]");
    assert_eq!(table.rows.len(), 1);

    let table = read_export_database(&path, Some("Sales Ar")).unwrap();
    assert_eq!(table.rows.len(), 2);
    assert!(
        table.database.starts_with("Sales Archive"),
        "{}",
        table.database
    );

    let table = read_export_database(&path, Some("exp")).unwrap();
    assert!(table
        .csv_name
        .ends_with("Expenses 4123456789abcdef0123456789abcdef.csv"));

    let table = read_export_database(&path, Some("21234567-89ab-cdef-0123-456789abcdef")).unwrap();
    assert!(
        table.database.starts_with("Suppliers"),
        "{}",
        table.database
    );

    let e = read_export_database(&path, Some("Sal")).unwrap_err();
    assert!(matches!(e, ExportError::AmbiguousDatabase { .. }), "{e}");
    assert!(
        e.to_string().contains("Sales Archive") && !e.to_string().contains("Inventory"),
        "{e}"
    );

    let e = read_export_database(&path, Some("Orders")).unwrap_err();
    assert!(matches!(e, ExportError::NoSuchDatabase { .. }), "{e}");
    assert!(
        e.to_string().contains("Inventory"),
        "lists what there is: {e}"
    );
}

/// An export of a few sales whose Part zip also holds a `size`-byte attachment, built with
/// the `zip` command as Notion's own archives are: the attachment stored, the Part deflated
/// inside the outer zip (`stored_part` false) or stored (`true`). Small on disk either way
/// when the Part is deflated, since the attachment is zeros.
pub fn export_with_attachment(dir: &Path, size: u64, stored_part: bool) -> PathBuf {
    let work = dir.join("build");
    std::fs::create_dir_all(work.join("Sales 0123456789abcdef0123456789abcdef")).unwrap();
    std::fs::write(
        work.join("Sales 0123456789abcdef0123456789abcdef_all.csv"),
        crlf_export(&[
            line("75800001-76800001", "€100.00", "€150.00"),
            line("75800002-76800002", "€110.00", "€160.00"),
        ]),
    )
    .unwrap();
    let attachment = work.join("Sales 0123456789abcdef0123456789abcdef/unboxing.mov");
    let file = std::fs::File::create(&attachment).unwrap();
    file.set_len(size).unwrap();
    let zip = |args: &[&str], cwd: &Path| {
        let status = std::process::Command::new("zip")
            .args(args)
            .current_dir(cwd)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("the zip command");
        assert!(status.success());
    };
    zip(
        &[
            "-0",
            "-r",
            "Export-9f-Part-1.zip",
            "Sales 0123456789abcdef0123456789abcdef_all.csv",
            "Sales 0123456789abcdef0123456789abcdef",
        ],
        &work,
    );
    std::fs::remove_file(&attachment).unwrap();
    let out = dir.join(if stored_part {
        "stored.zip"
    } else {
        "deflated.zip"
    });
    // `-n :` because zip leaves files named .zip uncompressed by default.
    let mut args: Vec<&str> = if stored_part {
        vec!["-0"]
    } else {
        vec!["-6", "-n", ":"]
    };
    args.extend([out.to_str().unwrap(), "Export-9f-Part-1.zip"]);
    zip(&args, &work);
    if !stored_part {
        assert!(
            std::fs::metadata(&out).unwrap().len() < size / 100,
            "small on disk"
        );
    }
    std::fs::remove_dir_all(&work).unwrap();
    out
}

#[test]
fn part_zips_with_a_large_attachment_are_read_without_it() {
    let dir = tempfile::tempdir().unwrap();
    for stored in [false, true] {
        let path = export_with_attachment(dir.path(), 200 << 20, stored);
        let table = read_export(&path).unwrap();
        assert!(
            table
                .csv_name
                .contains("Part-1.zip!/Sales 0123456789abcdef0123456789abcdef_all.csv"),
            "{}",
            table.csv_name
        );
        let sales = outcomes(&table, &Mapping::default());
        assert_eq!(sales.len(), 2);
        assert!(sales.iter().all(|(_, r)| matches!(r, Ok(Mapped::Sale(_)))));
        std::fs::remove_file(&path).unwrap();
    }
}
