//! The process's own Prometheus registry, read back as numbers.
//!
//! The dashboard shows what `/metrics` already counts; it adds no counter of
//! its own to the request path. `prometheus-client` keeps histogram buckets
//! private, so the registry is encoded to text (as a scrape would) and parsed
//! here. That costs a scrape's work once per dashboard tick, and only while a
//! page is open.

use std::collections::BTreeMap;

use prometheus_client::registry::Registry;

/// One sample line: `name{label="value",…} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    /// The value of label `key`, or `""`.
    pub fn label(&self, key: &str) -> &str {
        self.labels.get(key).map_or("", String::as_str)
    }
}

/// Every sample of one registry encoding.
#[derive(Clone, Debug, Default)]
pub struct Samples(Vec<Sample>);

impl Samples {
    /// Encodes `registry` and parses the result.
    pub fn read(registry: &Registry) -> Self {
        Self::parse(&crate::metrics::encode_text(registry))
    }

    /// Parses Prometheus / OpenMetrics text; lines it cannot read are skipped.
    pub fn parse(text: &str) -> Self {
        Self(text.lines().filter_map(parse_line).collect())
    }

    /// The samples named `name`.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.0.iter().filter(move |s| s.name == name)
    }

    /// The sum of the samples named `name` whose labels include every pair
    /// of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.named(name)
            .filter(|s| labels.iter().all(|(k, v)| s.label(k) == *v))
            .map(|s| s.value)
            .sum()
    }

    /// The cumulative buckets `(le, count)` of histogram `name` (without the
    /// `_bucket` suffix), summed over the samples matching `labels`, sorted by
    /// bound.
    pub fn buckets(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
        let bucket = format!("{name}_bucket");
        let mut by_le: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for s in self
            .named(&bucket)
            .filter(|s| labels.iter().all(|(k, v)| s.label(k) == *v))
        {
            let le = match s.label("le") {
                "+Inf" => f64::INFINITY,
                other => match other.parse::<f64>() {
                    Ok(v) => v,
                    Err(_) => continue,
                },
            };
            // Bucket bounds are positive, so their bits sort like the numbers.
            let e = by_le.entry(le.to_bits()).or_insert((le, 0.0));
            e.1 += s.value;
        }
        by_le.into_values().collect()
    }
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => return None,
    };
    let mut labels = BTreeMap::new();
    let rest = if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let mut end = None;
        loop {
            // key
            let mut key = String::new();
            for (i, c) in chars.by_ref() {
                match c {
                    '=' => break,
                    '}' => {
                        end = Some(i + 1);
                        break;
                    }
                    ',' | ' ' => {}
                    c => key.push(c),
                }
            }
            if end.is_some() {
                break;
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return None;
            }
            let mut value = String::new();
            let mut escaped = false;
            for (_, c) in chars.by_ref() {
                match (escaped, c) {
                    (true, 'n') => {
                        value.push('\n');
                        escaped = false;
                    }
                    (true, c) => {
                        value.push(c);
                        escaped = false;
                    }
                    (false, '\\') => escaped = true,
                    (false, '"') => break,
                    (false, c) => value.push(c),
                }
            }
            labels.insert(key, value);
        }
        &body[end?..]
    } else {
        rest
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_counters_histograms_and_escaped_labels() {
        let text = "# HELP weir_requests Requests\n\
            # TYPE weir_requests counter\n\
            weir_requests_total{route=\"a\",status_class=\"2xx\"} 7\n\
            weir_requests_total{route=\"a\",status_class=\"5xx\"} 3\n\
            weir_requests_total{route=\"b \\\"q\\\", x\",status_class=\"2xx\"} 1\n\
            weir_d_bucket{route=\"a\",le=\"0.01\"} 2\n\
            weir_d_bucket{route=\"a\",le=\"+Inf\"} 10\n\
            weir_d_bucket{route=\"a\",le=\"0.1\"} 9\n\
            weir_active_connections 4\n\
            # EOF\n";
        let s = Samples::parse(text);
        assert_eq!(s.sum("weir_requests_total", &[("route", "a")]), 10.0);
        assert_eq!(
            s.sum(
                "weir_requests_total",
                &[("route", "a"), ("status_class", "5xx")]
            ),
            3.0
        );
        assert_eq!(
            s.sum("weir_requests_total", &[("route", "b \"q\", x")]),
            1.0
        );
        assert_eq!(s.sum("weir_active_connections", &[]), 4.0);
        assert_eq!(
            s.buckets("weir_d", &[("route", "a")]),
            vec![(0.01, 2.0), (0.1, 9.0), (f64::INFINITY, 10.0)]
        );
    }

    #[test]
    fn reads_a_real_registry() {
        use prometheus_client::metrics::counter::Counter;
        let mut r = Registry::default();
        let c: Counter = Counter::default();
        c.inc_by(5);
        r.register("weir_things", "Things", c);
        assert_eq!(Samples::read(&r).sum("weir_things_total", &[]), 5.0);
    }
}
