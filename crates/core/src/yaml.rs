//! A YAML loader that keeps the location of every node and refuses hostile input.
//!
//! We read the event stream of `saphyr-parser` ourselves instead of deserialising with serde, so that
//! the decoder can report every structural problem at once, and so that limits (size, nesting depth,
//! alias expansion) are enforced while loading rather than after memory has been spent.

use foldhash::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError};

use crate::diag::{Code, Diagnostic};
use crate::source::{Source, Span};

/// Largest plan file accepted, in bytes.
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;
/// Deepest nesting of lists and mappings accepted.
pub const MAX_DEPTH: usize = 64;
/// Most nodes a document may expand to, aliases included.
pub const MAX_NODES: usize = 2_000_000;
/// Most nodes that aliases may add by expansion (stops "billion laughs").
pub const MAX_ALIAS_NODES: usize = 100_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// A scalar as written; `quoted` scalars are always strings, plain ones follow the YAML core schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    pub text: String,
    pub quoted: bool,
}

/// The YAML core schema type of a scalar.
#[derive(Debug, Clone, PartialEq)]
pub enum ScalarValue<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

impl Scalar {
    pub fn value(&self) -> ScalarValue<'_> {
        if self.quoted {
            return ScalarValue::Str(&self.text);
        }
        let t = self.text.as_str();
        match t {
            "" | "~" | "null" | "Null" | "NULL" => return ScalarValue::Null,
            "true" | "True" | "TRUE" => return ScalarValue::Bool(true),
            "false" | "False" | "FALSE" => return ScalarValue::Bool(false),
            _ => {}
        }
        if let Some(i) = parse_int(t) {
            return ScalarValue::Int(i);
        }
        if looks_like_float(t)
            && let Ok(f) = t.parse::<f64>()
        {
            return ScalarValue::Float(f);
        }
        ScalarValue::Str(t)
    }
}

fn parse_int(t: &str) -> Option<i64> {
    let (neg, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let v = if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = digits.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()?
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()?
    } else {
        return None;
    };
    Some(if neg { -v } else { v })
}

fn looks_like_float(t: &str) -> bool {
    let body = t.trim_start_matches(['-', '+']);
    matches!(body, ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN")
        || (body.bytes().any(|b| b.is_ascii_digit())
            && body
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+')))
}

impl Node {
    /// How the node reads to a user, for "expected X, found Y" messages.
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
            NodeKind::Scalar(s) => match s.value() {
                ScalarValue::Null => "nothing (null)",
                ScalarValue::Bool(_) => "a boolean",
                ScalarValue::Int(_) => "an integer",
                ScalarValue::Float(_) => "a number",
                ScalarValue::Str(_) => "a string",
            },
        }
    }

    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            NodeKind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar(s) if s.value() == ScalarValue::Null)
    }

    /// The node as JSON with scalars typed by the YAML core schema, as an editor's schema check sees it.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            NodeKind::Scalar(s) => match s.value() {
                ScalarValue::Null => Value::Null,
                ScalarValue::Bool(b) => Value::Bool(b),
                ScalarValue::Int(i) => Value::from(i),
                ScalarValue::Float(f) => serde_json::Number::from_f64(f)
                    .map_or_else(|| Value::String(s.text.clone()), Value::Number),
                ScalarValue::Str(t) => Value::String(t.to_string()),
            },
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (key_text(k), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Writes the canonical JSON form (see [`Node::to_canonical_json`]) without building it.
    pub fn write_canonical(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        match &self.kind {
            NodeKind::Scalar(s) => match s.value() {
                ScalarValue::Null => out.write_all(b"null"),
                _ => serde_json::to_writer(&mut *out, &s.text).map_err(std::io::Error::other),
            },
            NodeKind::Seq(items) => {
                out.write_all(b"[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.write_all(b",")?;
                    }
                    item.write_canonical(out)?;
                }
                out.write_all(b"]")
            }
            NodeKind::Map(entries) => {
                let mut sorted: Vec<(&str, &Node)> = entries
                    .iter()
                    .map(|(k, v)| (k.as_scalar().map_or("", |s| s.text.as_str()), v))
                    .collect();
                sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
                out.write_all(b"{")?;
                for (i, (k, v)) in sorted.into_iter().enumerate() {
                    if i > 0 {
                        out.write_all(b",")?;
                    }
                    serde_json::to_writer(&mut *out, k).map_err(std::io::Error::other)?;
                    out.write_all(b":")?;
                    v.write_canonical(out)?;
                }
                out.write_all(b"}")
            }
        }
    }

    /// The node as canonical JSON: mapping keys sorted, scalars as their text. Formatting, comments,
    /// quoting and key order do not change it, which is what the plan hash needs.
    pub fn to_canonical_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            // Scalars count as written (`1.10` is not `1.1` to a step), but null is null however spelt.
            NodeKind::Scalar(s) => match s.value() {
                ScalarValue::Null => Value::Null,
                _ => Value::String(s.text.clone()),
            },
            NodeKind::Seq(items) => {
                Value::Array(items.iter().map(Node::to_canonical_json).collect())
            }
            NodeKind::Map(entries) => {
                let mut sorted: Vec<(String, Value)> = entries
                    .iter()
                    .map(|(k, v)| (key_text(k), v.to_canonical_json()))
                    .collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                let mut map = serde_json::Map::new();
                for (k, v) in sorted {
                    map.insert(k, v);
                }
                Value::Object(map)
            }
        }
    }
}

fn key_text(node: &Node) -> String {
    node.as_scalar().map(|s| s.text.clone()).unwrap_or_default()
}

#[allow(clippy::result_large_err)] // the error path runs once per plan load
/// Turns raw file bytes into a [`Source`], refusing oversized files, invalid UTF-8 and NUL bytes.
pub fn source_from_bytes(name: &str, bytes: &[u8]) -> Result<Source, (Source, Diagnostic)> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err((
            Source::new(name, ""),
            Diagnostic::error(
                Code::FileTooLarge,
                None,
                format!(
                    "plan file is {} bytes; the limit is {} bytes",
                    bytes.len(),
                    MAX_FILE_BYTES
                ),
            )
            .with_hint("split the plan, or generate targets from fewer, larger label groups"),
        ));
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            let source = Source::new(name, text);
            if let Some(pos) = text.find('\0') {
                let d = Diagnostic::error(
                    Code::NulByte,
                    Span::new(pos, pos + 1),
                    "plan contains a NUL byte",
                )
                .with_label("NUL byte here")
                .with_hint("plan files are text; is this a binary file?");
                return Err((source, d));
            }
            Ok(source)
        }
        Err(e) => {
            let valid = e.valid_up_to();
            let shown = String::from_utf8_lossy(bytes).into_owned();
            let source = Source::new(name, shown);
            // The lossy text has the same bytes up to `valid`, so the offset is right in it.
            let d = Diagnostic::error(
                Code::InvalidUtf8,
                Span::new(valid, valid + 1),
                "plan is not valid UTF-8",
            )
            .with_label("invalid byte here")
            .with_hint("save the file as UTF-8");
            Err((source, d))
        }
    }
}

/// Loads the single YAML document of `source`.
pub fn load(source: &Source) -> Result<Node, Diagnostic> {
    Loader::new(source).run()
}

struct Frame {
    kind: FrameKind,
    start: usize,
    anchor: usize,
    nodes_before: usize,
}

enum FrameKind {
    Seq(Vec<Node>),
    /// Entries, the key waiting for its value, and each key's entry index (for duplicate checks
    /// that stay linear on mappings with thousands of keys).
    Map(Vec<(Node, Node)>, Option<Node>, HashMap<String, usize>),
}

struct Loader<'s> {
    source: &'s Source,
    anchors: HashMap<usize, (Node, usize)>,
    nodes: usize,
    alias_nodes: usize,
    stack: Vec<Frame>,
}

impl<'s> Loader<'s> {
    fn new(source: &'s Source) -> Self {
        Loader {
            source,
            anchors: HashMap::default(),
            nodes: 0,
            alias_nodes: 0,
            stack: Vec::new(),
        }
    }

    fn offset(&self, m: saphyr_parser::Marker) -> usize {
        self.source.offset_of(m.line(), m.col())
    }

    fn span(&self, s: saphyr_parser::Span) -> Span {
        Span::new(self.offset(s.start), self.offset(s.end))
    }

    fn run(mut self) -> Result<Node, Diagnostic> {
        let mut parser = Parser::new_from_str(self.source.text());
        let mut root: Option<Node> = None;
        let mut documents = 0;
        while let Some(item) = parser.next_event() {
            let (event, raw_span) = item.map_err(|e| self.syntax_error(&e))?;
            let span = self.span(raw_span);
            match event {
                Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
                Event::DocumentStart(_) => {
                    documents += 1;
                    if documents > 1 {
                        return Err(Diagnostic::error(
                            Code::MultipleDocuments,
                            span,
                            "a plan file holds exactly one YAML document",
                        )
                        .with_label("second document starts here")
                        .with_hint("put each plan in its own file"));
                    }
                }
                Event::Scalar(text, style, anchor, tag) => {
                    let mut quoted = !matches!(style, ScalarStyle::Plain);
                    if let Some(tag) = tag {
                        if tag.is_yaml_core_schema() && tag.suffix == "str" {
                            quoted = true;
                        } else {
                            return Err(Diagnostic::error(
                                Code::UnsupportedYaml,
                                span,
                                format!("YAML tag `{tag}` is not supported in plans"),
                            )
                            .with_hint(
                                "remove the tag; quote the value if it must stay a string",
                            ));
                        }
                    }
                    let node = Node {
                        kind: NodeKind::Scalar(Scalar {
                            text: text.into_owned(),
                            quoted,
                        }),
                        span,
                    };
                    self.count(1, span)?;
                    if anchor != 0 {
                        self.anchors.insert(anchor, (node.clone(), 1));
                    }
                    self.push_value(node, &mut root)?;
                }
                Event::Alias(id) => {
                    let Some((node, size)) = self.anchors.get(&id).cloned() else {
                        return Err(Diagnostic::error(
                            Code::YamlSyntax,
                            span,
                            "alias to an unknown anchor",
                        ));
                    };
                    self.alias_nodes += size;
                    if self.alias_nodes > MAX_ALIAS_NODES {
                        return Err(Diagnostic::error(
                            Code::TooManyNodes,
                            span,
                            format!("aliases expand to more than {MAX_ALIAS_NODES} nodes"),
                        )
                        .with_label("expansion limit reached at this alias")
                        .with_hint("this looks like an alias bomb; write the values out or use fewer aliases"));
                    }
                    self.count(size, span)?;
                    // The expanded copy keeps its own span (the alias) so errors point at the use.
                    let mut copy = node;
                    copy.span = span;
                    self.push_value(copy, &mut root)?;
                }
                Event::SequenceStart(..) | Event::MappingStart(..) => {
                    let is_seq = matches!(event, Event::SequenceStart(..));
                    let (Event::SequenceStart(anchor, tag) | Event::MappingStart(anchor, tag)) =
                        event
                    else {
                        continue;
                    };
                    if let Some(tag) = tag {
                        return Err(Diagnostic::error(
                            Code::UnsupportedYaml,
                            span,
                            format!("YAML tag `{tag}` is not supported in plans"),
                        ));
                    }
                    if self.stack.len() >= MAX_DEPTH {
                        return Err(Diagnostic::error(
                            Code::TooDeep,
                            span,
                            format!("nesting is deeper than {MAX_DEPTH} levels"),
                        )
                        .with_label("too deep here"));
                    }
                    self.count(1, span)?;
                    let kind = if is_seq {
                        FrameKind::Seq(Vec::new())
                    } else {
                        FrameKind::Map(Vec::new(), None, HashMap::default())
                    };
                    self.stack.push(Frame {
                        kind,
                        start: span.start as usize,
                        anchor,
                        nodes_before: self.nodes,
                    });
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    let Some(frame) = self.stack.pop() else {
                        return Err(Diagnostic::error(
                            Code::YamlSyntax,
                            span,
                            "unbalanced collection end",
                        ));
                    };
                    let end = (span.end as usize).max(frame.start);
                    let node_span = Span::new(frame.start, self.trim_end(frame.start, end));
                    let kind = match frame.kind {
                        FrameKind::Seq(items) => NodeKind::Seq(items),
                        FrameKind::Map(entries, _, _) => NodeKind::Map(entries),
                    };
                    let node = Node {
                        kind,
                        span: node_span,
                    };
                    if frame.anchor != 0 {
                        let size = self.nodes - frame.nodes_before + 1;
                        self.anchors.insert(frame.anchor, (node.clone(), size));
                    }
                    self.push_value(node, &mut root)?;
                }
            }
        }
        Ok(root.unwrap_or(Node {
            kind: NodeKind::Scalar(Scalar {
                text: String::new(),
                quoted: false,
            }),
            span: Span::new(0, 0),
        }))
    }

    /// Block collections end where the next token starts; pull the end back over trailing whitespace.
    fn trim_end(&self, start: usize, end: usize) -> usize {
        let text = &self.source.text()[start..end.min(self.source.text().len())];
        start + text.trim_end().len()
    }

    fn count(&mut self, n: usize, span: Span) -> Result<(), Diagnostic> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(Diagnostic::error(
                Code::TooManyNodes,
                span,
                format!("plan has more than {MAX_NODES} values"),
            ));
        }
        Ok(())
    }

    fn push_value(&mut self, node: Node, root: &mut Option<Node>) -> Result<(), Diagnostic> {
        let Some(frame) = self.stack.last_mut() else {
            *root = Some(node);
            return Ok(());
        };
        match &mut frame.kind {
            FrameKind::Seq(items) => items.push(node),
            FrameKind::Map(entries, pending_key, seen) => match pending_key.take() {
                None => {
                    let NodeKind::Scalar(key) = &node.kind else {
                        return Err(Diagnostic::error(
                            Code::UnsupportedYaml,
                            node.span,
                            "mapping keys must be plain names, not lists or mappings",
                        ));
                    };
                    // Small mappings are scanned; large ones use the index.
                    let earlier = if entries.len() < 16 {
                        entries
                            .iter()
                            .find(|(k, _)| k.as_scalar().is_some_and(|s| s.text == key.text))
                    } else {
                        seen.get(&key.text).and_then(|&i| entries.get(i))
                    };
                    if let Some((first, _)) = earlier {
                        return Err(Diagnostic::error(
                            Code::DuplicateKey,
                            node.span,
                            format!("key `{}` appears twice in the same mapping", key.text),
                        )
                        .with_label("repeated here")
                        .with_related(first.span, "first written here"));
                    }
                    if entries.len() == 15 {
                        for (i, (k, _)) in entries.iter().enumerate() {
                            seen.insert(key_text(k), i);
                        }
                    }
                    if entries.len() >= 15 {
                        seen.insert(key.text.clone(), entries.len());
                    }
                    *pending_key = Some(node);
                }
                Some(key) => entries.push((key, node)),
            },
        }
        Ok(())
    }

    fn syntax_error(&self, e: &ScanError) -> Diagnostic {
        let m = e.marker();
        let at = self.offset(*m);
        if e.info().contains("recursion limit") {
            return Diagnostic::error(
                Code::TooDeep,
                Span::new(at, at + 1),
                format!("nesting is deeper than {MAX_DEPTH} levels"),
            )
            .with_label("too deep here");
        }
        Diagnostic::error(
            Code::YamlSyntax,
            Span::new(at, at + 1),
            format!("invalid YAML: {}", e.info()),
        )
        .with_label("here")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<Node, Diagnostic> {
        load(&Source::new("t.yaml", text))
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        let node = load_str("a: 1\nb: '1'\nc: true\nd: ~\ne: 1.5\nf: 5m\n").expect("loads");
        let json = node.to_canonical_json();
        assert_eq!(
            json,
            serde_json::json!({"a": "1", "b": "1", "c": "true", "d": null, "e": "1.5", "f": "5m"})
        );
    }

    #[test]
    fn duplicate_keys_are_refused_with_both_places() {
        let err = load_str("a: 1\nb: 2\na: 3\n").expect_err("duplicate");
        assert_eq!(err.code, Code::DuplicateKey);
        assert_eq!(err.related.len(), 1);
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            doc.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
        }
        let err = load_str(&doc).expect_err("bomb");
        assert_eq!(err.code, Code::TooManyNodes);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let doc = "[".repeat(10_000) + &"]".repeat(10_000);
        let err = load_str(&doc).expect_err("deep");
        assert_eq!(err.code, Code::TooDeep);
    }

    #[test]
    fn nul_and_bad_utf8_are_refused() {
        let (_, d) = source_from_bytes("p", b"a: 1\nb: \0").expect_err("nul");
        assert_eq!(d.code, Code::NulByte);
        let (src, d) = source_from_bytes("p", b"a: 1\nb: \xff\n").expect_err("utf8");
        assert_eq!(d.code, Code::InvalidUtf8);
        assert_eq!(src.line_col(d.span.expect("span").start as usize).line, 2);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = load_str("a: [1, 2\nb: 3\n").expect_err("syntax");
        assert_eq!(err.code, Code::YamlSyntax);
        assert!(err.span.is_some());
    }
}
