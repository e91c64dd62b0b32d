//! The two exposition formats a scraper may ask for. prometheus-client writes OpenMetrics;
//! a scraper that does not ask for it (an older Prometheus, `curl`, `promtool check
//! metrics`) gets the Prometheus text format 0.0.4, in which a counter's family carries its
//! `_total` suffix and there is no `# EOF`.

/// Which format to answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Text,
}

impl Format {
    /// From a request's `Accept` header: OpenMetrics only when asked for.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// `openmetrics` (as prometheus-client wrote it) in `format`.
pub fn convert(openmetrics: String, format: Format) -> String {
    match format {
        Format::OpenMetrics => openmetrics,
        Format::Text => to_text(&openmetrics),
    }
}

fn to_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let family = match kind {
                "counter" => format!("{name}_total"),
                _ => name.to_string(),
            };
            if let Some((_, text)) = help.take() {
                out.push_str(&format!("# HELP {family} {text}\n"));
            }
            out.push_str(&format!("# TYPE {family} {kind}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_take_their_suffix_and_the_openmetrics_markers_go() {
        let open = "# HELP ballast_ticks Ticks.\n# TYPE ballast_ticks counter\nballast_ticks_total{trigger=\"periodic\"} 3\n\
                    # HELP ballast_leader Leader.\n# TYPE ballast_leader gauge\nballast_leader 1\n# EOF\n";
        let text = convert(open.into(), Format::Text);
        assert_eq!(
            text,
            "# HELP ballast_ticks_total Ticks.\n# TYPE ballast_ticks_total counter\nballast_ticks_total{trigger=\"periodic\"} 3\n\
             # HELP ballast_leader Leader.\n# TYPE ballast_leader gauge\nballast_leader 1\n"
        );
        assert_eq!(convert(open.into(), Format::OpenMetrics), open);
    }

    #[test]
    fn openmetrics_only_when_asked_for() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
        let prometheus = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
    }
}
