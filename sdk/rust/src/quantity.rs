//! Kubernetes resource quantities ("500m", "1.5Gi", "2") in snapshot files.
//!
//! Files are written by people, so CPU and memory accept the notation they already use in pod
//! specs; in memory everything is integers (millicores and bytes).

use std::fmt;

/// Parses a quantity into its value times `scale` (1000 for CPU millicores, 1 for bytes),
/// rounding up as the kubelet does for requests.
///
/// # Errors
/// A message naming what is wrong with `text`.
pub fn parse(text: &str, scale: f64) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E').unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let multiplier: f64 = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        "Pi" => 1024.0f64.powi(5),
        other => return Err(format!("unknown quantity suffix {other:?} in {text:?}")),
    };
    let value: f64 =
        number.parse().map_err(|_| format!("{text:?} is not a quantity (expected e.g. \"500m\", \"2\", \"1Gi\")"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("{text:?} must be a non-negative quantity"));
    }
    let scaled = (value * multiplier * scale).ceil();
    if scaled > u64::MAX as f64 {
        return Err(format!("{text:?} is too large"));
    }
    Ok(scaled as u64)
}

/// Formats millicores the way `kubectl` shows them.
pub fn format_cpu(millis: u64) -> String {
    if millis.is_multiple_of(1000) { (millis / 1000).to_string() } else { format!("{millis}m") }
}

/// Formats bytes with the largest binary suffix that divides them exactly.
pub fn format_memory(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)];
    for (suffix, size) in UNITS {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{suffix}", bytes / size);
        }
    }
    bytes.to_string()
}

/// Formats bytes for people: exact when a binary suffix divides them, else to two decimals
/// of the largest suffix ("3.2Gi").
pub fn display_memory(bytes: u64) -> String {
    let exact = format_memory(bytes);
    if exact.ends_with('i') || bytes < 1024 {
        return exact;
    }
    const UNITS: [(&str, u64); 4] = [("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)];
    let (suffix, size) = UNITS.into_iter().find(|(_, size)| bytes >= *size).unwrap_or(("Ki", 1 << 10));
    let value = format!("{:.2}", bytes as f64 / size as f64);
    format!("{}{suffix}", value.trim_end_matches('0').trim_end_matches('.'))
}

/// Serde support for CPU fields: accepts "250m", "1.5", 2 and writes "250m" or "2".
pub mod cpu {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(millis: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_cpu(*millis))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        d.deserialize_any(QuantityVisitor { scale: 1000.0, what: "a CPU quantity such as \"500m\" or 2" })
    }
}

/// Serde support for memory fields: accepts "512Mi", "1G", 1073741824 and writes "1Gi".
pub mod memory {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_memory(*bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        d.deserialize_any(QuantityVisitor { scale: 1.0, what: "a memory quantity such as \"512Mi\"" })
    }
}

struct QuantityVisitor {
    scale: f64,
    what: &'static str,
}

impl serde::de::Visitor<'_> for QuantityVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.what)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<u64, E> {
        parse(v, self.scale).map_err(E::custom)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
        parse(&v.to_string(), self.scale).map_err(E::custom)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
        if v < 0 {
            return Err(E::custom(format!("{v} must be a non-negative quantity")));
        }
        self.visit_u64(v as u64)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<u64, E> {
        parse(&v.to_string(), self.scale).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_notation() {
        assert_eq!(parse("500m", 1000.0), Ok(500));
        assert_eq!(parse("1.5", 1000.0), Ok(1500));
        assert_eq!(parse("2", 1000.0), Ok(2000));
        assert_eq!(parse("1Gi", 1.0), Ok(1 << 30));
        assert_eq!(parse("512Mi", 1.0), Ok(512 << 20));
        assert_eq!(parse("1G", 1.0), Ok(1_000_000_000));
        assert!(parse("-1", 1.0).is_err());
        assert!(parse("1Xi", 1.0).unwrap_err().contains("\"Xi\""));
        assert!(parse("lots", 1.0).is_err());
    }

    #[test]
    fn formats_round_trip() {
        for millis in [250, 1000, 1500, 96000] {
            assert_eq!(parse(&format_cpu(millis), 1000.0), Ok(millis));
        }
        assert_eq!(display_memory(3_435_973_837), "3.2Gi");
        assert_eq!(display_memory(1 << 30), "1Gi");
        for bytes in [1 << 30, 3 << 29, 1000, 7 << 20] {
            assert_eq!(parse(&format_memory(bytes), 1.0), Ok(bytes));
        }
    }
}
