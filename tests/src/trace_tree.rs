//! Received spans assembled into a tree per trace, and shape assertions on it
//! ("gateway SERVER → gateway CLIENT → order-sidecar SERVER …") with failure
//! messages that print the whole tree.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use crate::otlp_receiver::{Kind, ReceivedSpan};

/// The spans of one trace, linked parent → children.
#[derive(Clone, Debug)]
pub struct TraceTree {
    spans: Vec<ReceivedSpan>,
    children: HashMap<String, Vec<usize>>,
    roots: Vec<usize>,
}

impl TraceTree {
    /// Builds the tree of `spans`, which must all belong to one trace.
    /// A span whose parent was not received counts as a root.
    pub fn new(spans: Vec<ReceivedSpan>) -> Result<Self, String> {
        let mut ids: Vec<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() > 1 {
            return Err(format!("expected one trace, got {}: {ids:?}", ids.len()));
        }
        let index: HashMap<&str, usize> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id.as_str(), i))
            .collect();
        let mut children: HashMap<String, Vec<usize>> = HashMap::new();
        let mut roots = Vec::new();
        for (i, s) in spans.iter().enumerate() {
            match s
                .parent_span_id
                .as_deref()
                .filter(|p| index.contains_key(p))
            {
                Some(parent) => children.entry(parent.to_owned()).or_default().push(i),
                None => roots.push(i),
            }
        }
        Ok(Self {
            spans,
            children,
            roots,
        })
    }

    pub fn spans(&self) -> &[ReceivedSpan] {
        &self.spans
    }

    pub fn roots(&self) -> Vec<&ReceivedSpan> {
        self.roots.iter().map(|&i| &self.spans[i]).collect()
    }

    /// The single root; an error naming all roots otherwise.
    pub fn root(&self) -> Result<&ReceivedSpan, String> {
        match self.roots.as_slice() {
            [i] => Ok(&self.spans[*i]),
            _ => Err(format!(
                "expected one root span, got {}:\n{}",
                self.roots.len(),
                self.render()
            )),
        }
    }

    pub fn children(&self, span: &ReceivedSpan) -> Vec<&ReceivedSpan> {
        self.children
            .get(&span.span_id)
            .map(|v| v.iter().map(|&i| &self.spans[i]).collect())
            .unwrap_or_default()
    }

    /// Spans of `service` with `kind`.
    pub fn find(&self, service: &str, kind: Kind) -> Vec<&ReceivedSpan> {
        self.spans
            .iter()
            .filter(|s| s.service == service && s.kind == kind)
            .collect()
    }

    /// One line per span, indented by depth: `service KIND name [status] {key attrs}`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for &r in &self.roots {
            self.render_into(&mut out, r, 0);
        }
        out
    }

    fn render_into(&self, out: &mut String, i: usize, depth: usize) {
        let s = &self.spans[i];
        let mut extras = String::new();
        for key in [
            "http.response.status_code",
            "weir.retry.attempt",
            "weir.retry.reason",
            "error.type",
        ] {
            if let Some(v) = s.attributes.get(key) {
                let _ = write!(extras, " {key}={v:?}");
            }
        }
        let _ = writeln!(
            out,
            "{:indent$}{} {:?} {:?} [{:?}]{extras}",
            "",
            s.service,
            s.kind,
            s.name,
            s.status,
            indent = depth * 2
        );
        if let Some(kids) = self.children.get(&s.span_id) {
            for &k in kids {
                self.render_into(out, k, depth + 1);
            }
        }
    }

    /// Checks that the tree's single root matches `shape` (see [`Shape`]).
    pub fn check(&self, shape: &Shape) -> Result<(), String> {
        let root = self.root()?;
        if self.matches(root, shape) {
            Ok(())
        } else {
            Err(format!(
                "trace does not have the expected shape.\nexpected:\n{}\ngot:\n{}",
                shape.render(),
                self.render()
            ))
        }
    }

    /// Panics with both trees printed unless [`TraceTree::check`] passes.
    #[track_caller]
    pub fn assert_shape(&self, shape: &Shape) {
        if let Err(e) = self.check(shape) {
            panic!("{e}");
        }
    }

    fn matches(&self, span: &ReceivedSpan, shape: &Shape) -> bool {
        if span.service != shape.service || span.kind != shape.kind {
            return false;
        }
        if shape.name.as_deref().is_some_and(|n| n != span.name) {
            return false;
        }
        if let Some((_, pred)) = &shape.pred
            && !pred(span)
        {
            return false;
        }
        let kids = self.children(span);
        if shape.exact && kids.len() != shape.children.len() {
            return false;
        }
        // Each expected child takes a distinct actual span (backtracking; trees
        // are small): a direct child, or any descendant for a `below` shape.
        let below = self.descendants(span);
        let mut used = HashSet::new();
        self.assign(&kids, &below, &shape.children, &mut used)
    }

    fn assign<'a>(
        &'a self,
        kids: &[&'a ReceivedSpan],
        below: &[&'a ReceivedSpan],
        want: &[Shape],
        used: &mut HashSet<&'a str>,
    ) -> bool {
        let Some((shape, rest)) = want.split_first() else {
            return true;
        };
        let pool = if shape.below { below } else { kids };
        for cand in pool {
            if !used.contains(cand.span_id.as_str()) && self.matches(cand, shape) {
                used.insert(cand.span_id.as_str());
                if self.assign(kids, below, rest, used) {
                    return true;
                }
                used.remove(cand.span_id.as_str());
            }
        }
        false
    }

    /// Every span under `span`, depth first.
    pub fn descendants(&self, span: &ReceivedSpan) -> Vec<&ReceivedSpan> {
        let mut out = Vec::new();
        let mut stack = self.children(span);
        while let Some(s) = stack.pop() {
            out.push(s);
            stack.extend(self.children(s));
        }
        out
    }

    /// The chain of parents of `span`, nearest first.
    pub fn ancestors(&self, span: &ReceivedSpan) -> Vec<&ReceivedSpan> {
        let mut out = Vec::new();
        let mut cur = span;
        while let Some(parent) = cur
            .parent_span_id
            .as_deref()
            .and_then(|id| self.spans.iter().find(|s| s.span_id == id))
        {
            out.push(parent);
            cur = parent;
        }
        out
    }
}

/// An expected subtree: service, kind, optional name and predicate, children.
///
/// Children are matched order-insensitively, each to a distinct span; extra
/// actual children are allowed unless [`Shape::exact`] is set.
pub struct Shape {
    pub service: String,
    pub kind: Kind,
    pub name: Option<String>,
    pub children: Vec<Shape>,
    pub exact: bool,
    /// Matches any descendant of the parent shape's span, not only a child.
    pub below: bool,
    #[allow(clippy::type_complexity)]
    pred: Option<(String, Box<dyn Fn(&ReceivedSpan) -> bool + Send + Sync>)>,
}

impl std::fmt::Debug for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

impl Shape {
    pub fn new(service: &str, kind: Kind) -> Self {
        Self {
            service: service.to_owned(),
            kind,
            name: None,
            children: Vec::new(),
            exact: false,
            below: false,
            pred: None,
        }
    }

    pub fn server(service: &str) -> Self {
        Self::new(service, Kind::Server)
    }

    pub fn client(service: &str) -> Self {
        Self::new(service, Kind::Client)
    }

    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// An extra condition on the span, described for failure messages;
    /// several must all hold.
    pub fn that(
        mut self,
        what: &str,
        pred: impl Fn(&ReceivedSpan) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.pred = Some(match self.pred.take() {
            None => (what.to_owned(), Box::new(pred)),
            Some((before, first)) => (
                format!("{before} and {what}"),
                Box::new(move |s: &ReceivedSpan| first(s) && pred(s)),
            ),
        });
        self
    }

    pub fn child(mut self, child: Shape) -> Self {
        self.children.push(child);
        self
    }

    pub fn children(mut self, children: impl IntoIterator<Item = Shape>) -> Self {
        self.children.extend(children);
        self
    }

    /// No children besides the listed ones.
    pub fn exact(mut self) -> Self {
        self.exact = true;
        self
    }

    /// Adds an expected descendant: any span under the parent, at any depth
    /// (for hops whose inner spans — handler steps, app CLIENT spans — the
    /// test does not care about).
    pub fn descendant(mut self, shape: Shape) -> Self {
        self.children.push(Shape {
            below: true,
            ..shape
        });
        self
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out, 0);
        out
    }

    fn render_into(&self, out: &mut String, depth: usize) {
        let name = self
            .name
            .as_deref()
            .map(|n| format!(" {n:?}"))
            .unwrap_or_default();
        let pred = self
            .pred
            .as_ref()
            .map(|(w, _)| format!(" where {w}"))
            .unwrap_or_default();
        let exact = if self.exact { " (exact)" } else { "" };
        let below = if self.below { "… " } else { "" };
        let _ = writeln!(
            out,
            "{:indent$}{below}{} {:?}{name}{pred}{exact}",
            "",
            self.service,
            self.kind,
            indent = depth * 2
        );
        for c in &self.children {
            c.render_into(out, depth + 1);
        }
    }
}
