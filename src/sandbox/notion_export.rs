//! A realistic Notion "Markdown & CSV" export of sales, generated from a seed: the stand-in for
//! the business's real export in the tests and the import benchmark. It renders values the way
//! Notion does (`€1,234.56`, `November 5, 2023 3:00 PM`, `25%`, relations with links) so that the
//! production reader and mapping are exercised on the text they meet in real files.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The columns [`write_sample_export`] writes, in the order an `_all.csv` has them: the title
/// first, the rest alphabetical.
pub const SAMPLE_COLUMNS: [&str; 14] = [
    "Sale ID",
    "Delivery Date",
    "Name",
    "Net Buy",
    "Net Sale",
    "Profit",
    "Purchase Date",
    "ROI",
    "SKU",
    "Sale Date",
    "Sale Platform",
    "Sale Price",
    "Size",
    "Supplier",
];

/// Writes a realistic export CSV (UTF-8 with BOM) of `n_rows` sales to `path`, the same for
/// the same `seed`: Notion's rendering (`€1,234.56`, `November 5, 2023 3:00 PM`, `25%`,
/// relations with links), about one row in eight on another platform, some empty optional
/// cells. Every StockX row maps to a valid sale.
pub fn write_sample_export(path: &Path, n_rows: usize, seed: u64) -> io::Result<()> {
    let mut file = io::BufWriter::new(File::create(path)?);
    file.write_all(b"\xEF\xBB\xBF")?;
    write_sample_rows(&mut file, n_rows, seed)?;
    file.flush()
}

fn write_sample_rows<W: Write>(out: W, n_rows: usize, seed: u64) -> io::Result<()> {
    const PRODUCTS: [(&str, &str); 6] = [
        (
            "Jordan 1 Retro High OG Chicago Lost and Found",
            "DZ5485-612",
        ),
        ("Nike Dunk Low Panda", "DD1391-100"),
        ("adidas Yeezy Boost 350 V2 Onyx", "HQ4540"),
        ("New Balance 550 White Green", "BB550WT1"),
        ("Nike Air Force 1 '07, White", "CW2288-111"),
        ("Jordan 4 Retro Military Black", "DH6927-111"),
    ];
    const SUPPLIERS: [&str; 5] = [
        "Foot Locker",
        "Nike SNKRS",
        "Zalando",
        "JD Sports",
        "Solebox, Berlin",
    ];
    const OTHER_PLATFORMS: [&str; 3] = ["GOAT", "eBay", "Alias"];
    const SIZES: [&str; 8] = [
        "US 8", "US 9", "US 9.5", "US 10", "US 10.5", "US 11", "EU 44", "US W 8",
    ];

    let mut rng = StdRng::seed_from_u64(seed);
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(SAMPLE_COLUMNS)?;
    let start = time::macros::date!(2021 - 01 - 01);
    for i in 0..n_rows {
        let (name, sku) = PRODUCTS[rng.random_range(0..PRODUCTS.len())];
        let supplier = SUPPLIERS[rng.random_range(0..SUPPLIERS.len())];
        let buy_cents: i64 = rng.random_range(6_000..40_000);
        let sale_cents = buy_cents + rng.random_range(-2_000..25_000);
        let net_cents = sale_cents * 905 / 1000;
        let profit_cents = net_cents - buy_cents;
        let purchase = start + time::Duration::days(rng.random_range(0..1_400));
        let sold = purchase + time::Duration::days(rng.random_range(1..120));
        let delivered = sold + time::Duration::days(rng.random_range(2..10));
        let platform = if rng.random_range(0..8) == 0 {
            OTHER_PLATFORMS[rng.random_range(0..OTHER_PLATFORMS.len())]
        } else {
            "StockX"
        };
        let order = format!(
            "{}-{}",
            70_000_000 + i * 7 % 10_000_000,
            10_000_000 + (i * 7_919) % 90_000_000
        );
        let roi = format!(
            "{}%",
            (rust_decimal::Decimal::new(profit_cents * 10_000 / buy_cents, 2)).normalize()
        );
        let slug = supplier.replace([' ', ','], "-");
        let supplier_cell = format!(
            "{supplier} (https://www.notion.so/{slug}-{:032x}?pvs=21)",
            rng.random::<u128>()
        );
        let sold_cell = if rng.random_bool(0.5) {
            format!(
                "{} {}:{:02} {}",
                render_date(sold),
                rng.random_range(1..13),
                rng.random_range(0..60),
                if rng.random_bool(0.5) { "AM" } else { "PM" }
            )
        } else {
            render_date(sold)
        };
        let delivered_cell = if rng.random_range(0..5) == 0 {
            String::new()
        } else {
            render_date(delivered)
        };
        let euros = |cents: i64| render_euros(cents);
        writer.write_record([
            order.as_str(),
            &delivered_cell,
            name,
            &euros(buy_cents),
            &euros(net_cents),
            &euros(profit_cents),
            &render_date(purchase),
            &roi,
            sku,
            &sold_cell,
            platform,
            &euros(sale_cents),
            SIZES[rng.random_range(0..SIZES.len())],
            &supplier_cell,
        ])?;
    }
    writer.flush()
}

/// `November 5, 2023`, Notion's default "Full date" format.
pub fn render_date(date: time::Date) -> String {
    format!("{} {}, {}", date.month(), date.day(), date.year())
}

/// `€1,234.56` / `-€5.00`, Notion's `euro` number format.
pub fn render_euros(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    let euros = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in euros.chars().enumerate() {
        if i > 0 && (euros.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}€{grouped}.{:02}", cents % 100)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::notion::export::read_csv;
    use crate::notion::mapping::{map_row, Mapped, Mapping, RecordSource};

    #[test]
    fn euros_render_like_notion() {
        assert_eq!(render_euros(123_456), "€1,234.56");
        assert_eq!(render_euros(-500), "-€5.00");
        assert_eq!(render_euros(9_900), "€99.00");
        assert_eq!(
            render_date(time::macros::date!(2023 - 11 - 05)),
            "November 5, 2023"
        );
    }

    #[test]
    fn sample_rows_all_map() {
        let mut bytes = Vec::new();
        write_sample_rows(&mut bytes, 300, 7).unwrap();
        let t = read_csv(&bytes, "sample.csv".into(), Path::new("sample.csv")).unwrap();
        assert_eq!(t.rows.len(), 300);
        let mapping = Mapping::default();
        crate::notion::mapping::check_columns(&mapping, &t.headers).unwrap();
        let (mut sales, mut skipped) = (0, 0);
        for (_, row) in &t.rows {
            let row = row.as_ref().unwrap();
            let origin = RecordSource::CsvRow { row: 0 };
            match map_row(&mapping, &origin, row) {
                Ok(Mapped::Sale(_)) => sales += 1,
                Ok(Mapped::SkippedPlatform(_)) => skipped += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(
            sales > 200 && skipped > 10,
            "{sales} sales, {skipped} skipped"
        );
        let mut again = Vec::new();
        write_sample_rows(&mut again, 300, 7).unwrap();
        assert_eq!(bytes, again, "the same seed gives the same export");
    }
}
