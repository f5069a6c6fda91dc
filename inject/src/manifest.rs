//! `sidecar inject`: multi-document Kubernetes YAML in, the same YAML out
//! with the sidecar added to every pod template that opts in.
//!
//! Documents that are not changed are copied byte for byte (comments and
//! formatting included), so running the injector over a whole directory of
//! manifests only touches what it injects. A changed document is re-rendered:
//! its keys keep their original order, new keys follow in sorted order, and
//! its comments are lost (YAML libraries do not keep them).

use serde::Deserialize;
use serde_json::Value;
use serde_norway::Value as Yaml;

use crate::error::InjectError;
use crate::options::InjectOptions;
use crate::pod::{Outcome, inject_pod_template};
use crate::render::ordered_like;

/// What happened to one workload in a manifest, for the CLI's summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadReport {
    /// `kind/name`, lower-case kind as kubectl prints it.
    pub workload: String,
    pub outcome: Outcome,
}

/// The injected manifest and what happened to each workload in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    pub yaml: String,
    pub workloads: Vec<WorkloadReport>,
}

/// Injects every opted-in pod template in `input` (any number of documents).
/// On any error nothing is returned, so a caller never writes half a result.
pub fn inject_yaml(input: &str, opts: &InjectOptions) -> Result<String, InjectError> {
    inject_manifests(input, opts).map(|i| i.yaml)
}

/// [`inject_yaml`] plus a per-workload report.
pub fn inject_manifests(input: &str, opts: &InjectOptions) -> Result<Injected, InjectError> {
    validate_all(input)?;
    let mut out = String::with_capacity(input.len() + input.len() / 2);
    let mut workloads = Vec::new();
    for (index, chunk) in split_documents(input).into_iter().enumerate() {
        let document = index + 1;
        if chunk.is_blank() {
            out.push_str(chunk.text);
            continue;
        }
        let original: Yaml = serde_norway::from_str(chunk.text)
            .map_err(|source| InjectError::YamlDocument { document, source })?;
        let mut json = match serde_json::to_value(&original) {
            Ok(v) => v,
            // Not representable as JSON (non-string keys, tags): not a
            // Kubernetes object, so it cannot hold a pod template either.
            Err(_) => {
                out.push_str(chunk.text);
                continue;
            }
        };
        let before = workloads.len();
        inject_object(&mut json, opts, &mut workloads)
            .map_err(|e| e.in_document(document, chunk.start_line))?;
        if workloads[before..]
            .iter()
            .any(|w| w.outcome == Outcome::Injected)
        {
            if chunk.has_marker {
                out.push_str("---\n");
            }
            let rendered = serde_norway::to_string(&ordered_like(&json, Some(&original)))
                .map_err(InjectError::Render)?;
            out.push_str(&rendered);
        } else {
            out.push_str(chunk.text);
        }
    }
    Ok(Injected {
        yaml: out,
        workloads,
    })
}

/// Injects into one object: a workload, a Pod, or a list of them.
fn inject_object(
    obj: &mut Value,
    opts: &InjectOptions,
    reports: &mut Vec<WorkloadReport>,
) -> Result<(), InjectError> {
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if kind == "List" || (kind.ends_with("List") && obj.get("items").is_some_and(Value::is_array)) {
        if let Some(Value::Array(items)) = obj.get_mut("items") {
            for item in items {
                inject_object(item, opts, reports)?;
            }
        }
        return Ok(());
    }
    let path: &[&str] = match kind.as_str() {
        "Pod" => &[],
        "PodTemplate" => &["template"],
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job" => &["spec", "template"],
        "CronJob" => &["spec", "jobTemplate", "spec", "template"],
        _ => return Ok(()),
    };
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>")
        .to_owned();
    let workload = format!("{}/{name}", kind.to_lowercase());
    let mut template = &mut *obj;
    for key in path {
        template = match template.get_mut(*key) {
            Some(next) => next,
            None => {
                return Err(InjectError::Pod(format!(
                    "{workload}: missing {}",
                    path.join(".")
                )));
            }
        };
    }
    let outcome = inject_pod_template(template, opts).map_err(|e| InjectError::Workload {
        workload: workload.clone(),
        source: Box::new(e),
    })?;
    reports.push(WorkloadReport { workload, outcome });
    Ok(())
}

/// Parses the whole input as a YAML stream first, so a syntax error is
/// reported with its line in the input rather than in one document.
fn validate_all(input: &str) -> Result<(), InjectError> {
    for document in serde_norway::Deserializer::from_str(input) {
        serde::de::IgnoredAny::deserialize(document).map_err(|source| match source.location() {
            Some(at) => InjectError::Yaml {
                line: at.line(),
                column: at.column(),
                source,
            },
            None => InjectError::YamlDocument {
                document: 0,
                source,
            },
        })?;
    }
    Ok(())
}

/// One document's text, including its leading `---` line if it has one.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Chunk<'a> {
    pub(crate) text: &'a str,
    /// 1-based line of the chunk's first line in the input.
    pub(crate) start_line: usize,
    pub(crate) has_marker: bool,
}

impl Chunk<'_> {
    /// Only blank lines, comments and markers: nothing to parse.
    fn is_blank(&self) -> bool {
        self.text.lines().all(|l| {
            let t = l.trim();
            t.is_empty() || t.starts_with('#') || is_marker(l) || t == "..."
        })
    }
}

/// `---` at column 0 followed by nothing, a space or a tab. Such a line starts
/// a document wherever it appears (block scalars are indented, so they cannot
/// contain one).
fn is_marker(line: &str) -> bool {
    let line = line.trim_end_matches(['\n', '\r']);
    line.strip_prefix("---")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

fn starts_with_marker(text: &str) -> bool {
    text.lines().next().is_some_and(is_marker)
}

/// Splits a YAML stream into documents at `---` lines, keeping every byte.
pub(crate) fn split_documents(input: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (index, line) in input.split_inclusive('\n').enumerate() {
        if is_marker(line) && offset > start {
            chunks.push(Chunk {
                text: &input[start..offset],
                start_line,
                has_marker: starts_with_marker(&input[start..]),
            });
            start = offset;
            start_line = index + 1;
        }
        offset += line.len();
    }
    if start < input.len() || chunks.is_empty() {
        chunks.push(Chunk {
            text: &input[start..],
            start_line,
            has_marker: starts_with_marker(&input[start..]),
        });
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_every_byte_and_line_numbers() {
        let input = "# head\na: 1\n---\nb: |\n  ---x\n--- # c\nc: 3\n";
        let chunks = split_documents(input);
        let texts: Vec<_> = chunks.iter().map(|c| c.text).collect();
        assert_eq!(
            texts,
            ["# head\na: 1\n", "---\nb: |\n  ---x\n", "--- # c\nc: 3\n"]
        );
        assert_eq!(
            chunks.iter().map(|c| c.start_line).collect::<Vec<_>>(),
            [1, 3, 6]
        );
        assert_eq!(
            chunks.iter().map(|c| c.has_marker).collect::<Vec<_>>(),
            [false, true, true]
        );
        assert_eq!(texts.concat(), input);
        assert!(!is_marker("----\n"));
    }

    #[test]
    fn syntax_error_names_the_line_in_the_whole_input() {
        let input = "kind: Pod\n---\nkind: Service\nmetadata: {name: [\n";
        match inject_yaml(input, &InjectOptions::default()) {
            Err(InjectError::Yaml { line, .. }) => assert!((4..=5).contains(&line), "line {line}"),
            other => panic!("expected a YAML error, got {other:?}"),
        }
    }

    #[test]
    fn untouched_documents_are_copied_verbatim() {
        let input =
            "# keep me\napiVersion: v1\nkind: Service   # odd spacing\nmetadata: {name: s}\n";
        assert_eq!(
            inject_yaml(
                input,
                &InjectOptions {
                    all: true,
                    ..Default::default()
                }
            )
            .ok()
            .as_deref(),
            Some(input)
        );
    }
}
