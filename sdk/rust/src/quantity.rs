//! Kubernetes resource quantities ("500m", "1.5Gi", "2") in snapshot files.
//!
//! Files are written by people, so CPU and memory accept the notation they already use in pod
//! specs; in memory everything is integers (millicores and bytes).

use std::fmt;

/// Parses a quantity into its value times `scale` (1000 for CPU millicores, 1 for bytes),
/// rounding up as the kubelet does for requests.
///
/// The whole Kubernetes grammar: an optionally signed decimal number, then a binary suffix
/// (`Ki` `Mi` `Gi` `Ti` `Pi` `Ei`), a decimal one (`n` `u` `m` `k` `M` `G` `T` `P` `E`) or a
/// decimal exponent (`e3`, `E-2`). metrics-server reports CPU in nanocores (`"576285n"`).
/// The arithmetic is exact (no floating point), so `"1.1"` CPU is 1100 millicores.
///
/// # Errors
/// A message naming what is wrong with `text`: no number, an unknown suffix, a negative
/// value, or a value too large for 64 bits.
pub fn parse(text: &str, scale: f64) -> Result<u64, String> {
    let scale_exp = if scale == 1000.0 {
        3
    } else if scale == 1.0 {
        0
    } else {
        return Err(format!("unsupported scale {scale} for {text:?}"));
    };
    let parsed = Parsed::read(text)?;
    parsed.scaled(scale_exp).ok_or_else(|| format!("{text:?} is too large"))
}

/// A quantity as mantissa × 10^exp10 × 2^exp2.
struct Parsed {
    mantissa: u128,
    exp10: i32,
    exp2: u32,
}

impl Parsed {
    fn read(original: &str) -> Result<Self, String> {
        let not_a_quantity =
            || format!("{original:?} is not a quantity (expected e.g. \"500m\", \"2\", \"1Gi\", \"576285n\")");
        let text = original.trim();
        let (negative, unsigned) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let number_len = unsigned.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(unsigned.len());
        let (number, suffix) = unsigned.split_at(number_len);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err(not_a_quantity());
        }
        let digits = format!("{whole}{fraction}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > 36 {
            return Err(format!("{original:?} has too many digits"));
        }
        let mantissa: u128 = if digits.is_empty() { 0 } else { digits.parse().map_err(|_| not_a_quantity())? };
        if negative && mantissa > 0 {
            return Err(format!("{original:?} must be a non-negative quantity"));
        }
        let (exp10, exp2) = suffix_exponents(suffix).ok_or_else(|| {
            if suffix.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '+') && !suffix.is_empty() {
                format!("unknown quantity suffix {suffix:?} in {original:?}")
            } else {
                not_a_quantity()
            }
        })?;
        let exp10 = exp10 - i32::try_from(fraction.len()).map_err(|_| not_a_quantity())?;
        Ok(Parsed { mantissa, exp10, exp2 })
    }

    /// The value × 10^scale_exp, rounded up; none if it overflows 64 bits.
    fn scaled(&self, scale_exp: i32) -> Option<u64> {
        let exp10 = self.exp10 + scale_exp;
        let mut value = self.mantissa.checked_mul(1u128.checked_shl(self.exp2)?)?;
        if exp10 >= 0 {
            value = value.checked_mul(10u128.checked_pow(exp10 as u32)?)?;
        } else {
            let divisor = 10u128.checked_pow(exp10.unsigned_abs());
            value = match divisor {
                Some(d) => value.div_ceil(d),
                None => u128::from(value > 0),
            };
        }
        u64::try_from(value).ok()
    }
}

/// (decimal exponent, binary exponent) of a suffix.
fn suffix_exponents(suffix: &str) -> Option<(i32, u32)> {
    let decimal = match suffix {
        "" => Some(0),
        "n" => Some(-9),
        "u" => Some(-6),
        "m" => Some(-3),
        "k" => Some(3),
        "M" => Some(6),
        "G" => Some(9),
        "T" => Some(12),
        "P" => Some(15),
        "E" => Some(18),
        _ => None,
    };
    if let Some(exp) = decimal {
        return Some((exp, 0));
    }
    let binary = match suffix {
        "Ki" => Some(10),
        "Mi" => Some(20),
        "Gi" => Some(30),
        "Ti" => Some(40),
        "Pi" => Some(50),
        "Ei" => Some(60),
        _ => None,
    };
    if let Some(exp) = binary {
        return Some((0, exp));
    }
    let exponent = suffix.strip_prefix('e').or_else(|| suffix.strip_prefix('E'))?;
    let digits = exponent.strip_prefix('+').or_else(|| exponent.strip_prefix('-')).unwrap_or(exponent);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) || digits.len() > 4 {
        return None;
    }
    exponent.parse::<i32>().ok().map(|e| (e, 0))
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
    fn parses_the_whole_kubernetes_grammar_exactly() {
        let cpu = |t| parse(t, 1000.0);
        let bytes = |t| parse(t, 1.0);
        // metrics-server reports nanocores and sometimes microcores; requests round up.
        assert_eq!(cpu("576285n"), Ok(1));
        assert_eq!(cpu("1500000000n"), Ok(1500));
        assert_eq!(cpu("250000u"), Ok(250));
        assert_eq!(cpu("1.1"), Ok(1100), "exact decimal arithmetic, no float rounding up to 1101");
        assert_eq!(cpu("0.001"), Ok(1));
        assert_eq!(cpu("+2"), Ok(2000));
        assert_eq!(cpu("1e3"), Ok(1_000_000));
        assert_eq!(cpu("15E-1"), Ok(1500));
        assert_eq!(cpu(".5"), Ok(500));
        assert_eq!(bytes("1k"), Ok(1000));
        assert_eq!(bytes("2T"), Ok(2_000_000_000_000));
        assert_eq!(bytes("1P"), Ok(1_000_000_000_000_000));
        assert_eq!(bytes("1E"), Ok(1_000_000_000_000_000_000));
        assert_eq!(bytes("1Ei"), Ok(1 << 60));
        assert_eq!(bytes("1.5Ki"), Ok(1536));
        assert_eq!(bytes("129e6"), Ok(129_000_000));
        assert_eq!(bytes("0"), Ok(0));
        assert_eq!(bytes("-0"), Ok(0));
        assert!(bytes("20Ei").unwrap_err().contains("too large"));
        assert!(bytes("1..2").is_err());
        assert!(bytes("").is_err());
        assert!(bytes("Gi").is_err());
        assert!(bytes("1e").is_err());
        assert!(bytes("1 Gi").is_err());
        assert!(cpu("garbage").unwrap_err().contains("\"garbage\""));
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
