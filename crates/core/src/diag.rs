//! Diagnostics: every problem found in a plan, with where it is and how to fix it.
//!
//! Problems are collected, never thrown, so that one `slipway check` run reports all of them.

use std::fmt;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource};
use serde::Serialize;

use crate::source::{Source, Span};

/// Stable identifiers of every kind of plan problem; they appear in JSON output and the docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    FileTooLarge,
    InvalidUtf8,
    NulByte,
    YamlSyntax,
    TooDeep,
    TooManyNodes,
    MultipleDocuments,
    UnsupportedYaml,
    DuplicateKey,
    UnknownKey,
    WrongType,
    MissingField,
    InvalidValue,
    UnsupportedVersion,
    DuplicateId,
    UnknownStep,
    DependencyCycle,
    NoTargets,
    UnknownTest,
    UnknownTemplate,
    BadTemplate,
    BadDuration,
    BadWindow,
    BadTimeZone,
    OutOfRange,
    ImpossibleApprovals,
    ProtectedWithoutApprovals,
    ReleaseDirWithoutVersion,
    ConflictingFields,
    UnknownRole,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        // Kept equal to the serde names by a test.
        match self {
            Code::FileTooLarge => "file_too_large",
            Code::InvalidUtf8 => "invalid_utf8",
            Code::NulByte => "nul_byte",
            Code::YamlSyntax => "yaml_syntax",
            Code::TooDeep => "too_deep",
            Code::TooManyNodes => "too_many_nodes",
            Code::MultipleDocuments => "multiple_documents",
            Code::UnsupportedYaml => "unsupported_yaml",
            Code::DuplicateKey => "duplicate_key",
            Code::UnknownKey => "unknown_key",
            Code::WrongType => "wrong_type",
            Code::MissingField => "missing_field",
            Code::InvalidValue => "invalid_value",
            Code::UnsupportedVersion => "unsupported_version",
            Code::DuplicateId => "duplicate_id",
            Code::UnknownStep => "unknown_step",
            Code::DependencyCycle => "dependency_cycle",
            Code::NoTargets => "no_targets",
            Code::UnknownTest => "unknown_test",
            Code::UnknownTemplate => "unknown_template",
            Code::BadTemplate => "bad_template",
            Code::BadDuration => "bad_duration",
            Code::BadWindow => "bad_window",
            Code::BadTimeZone => "bad_time_zone",
            Code::OutOfRange => "out_of_range",
            Code::ImpossibleApprovals => "impossible_approvals",
            Code::ProtectedWithoutApprovals => "protected_without_approvals",
            Code::ReleaseDirWithoutVersion => "release_dir_without_version",
            Code::ConflictingFields => "conflicting_fields",
            Code::UnknownRole => "unknown_role",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: Code,
    pub message: String,
    /// Where the problem is; `None` for problems of the file as a whole (size, encoding).
    pub span: Option<Span>,
    /// Short text under the marker.
    pub label: Option<String>,
    pub hint: Option<String>,
    /// Further places involved, such as the other steps of a cycle.
    pub related: Vec<(Span, String)>,
}

impl Diagnostic {
    pub fn error(code: Code, span: impl Into<Option<Span>>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            span: span.into(),
            label: None,
            hint: None,
            related: Vec::new(),
        }
    }

    pub fn warning(code: Code, span: impl Into<Option<Span>>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, span, message)
        }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_related(mut self, span: Span, text: impl Into<String>) -> Self {
        self.related.push((span, text.into()));
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Suggests the closest of `candidates` to a misspelt `word`, if one is close enough.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|&(d, c)| d > 0 && c != word)
        .filter(|&(d, c)| {
            let close = d <= 2.max(c.len() / 3) && d < c.len().max(word.len());
            let shorter = word.char_indices().last().map_or("", |(i, _)| &word[..i]);
            let stem = word.chars().count() >= 4 && (c.starts_with(shorter) || word.starts_with(c));
            close || stem
        })
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// "did you mean …?" hint for a misspelt name, if any candidate is close.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    suggest(word, candidates).map(|s| format!("did you mean `{s}`?"))
}

/// A diagnostic in the serialisable shape used by `--output json` and the HTTP API.
#[derive(Debug, Clone, Serialize)]
pub struct DiagnosticData {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub end_line: Option<usize>,
    pub end_column: Option<usize>,
    pub source_line: Option<String>,
    pub label: Option<String>,
    pub hint: Option<String>,
    pub related: Vec<RelatedData>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RelatedData {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Diagnostic {
    pub fn to_data(&self, source: &Source) -> DiagnosticData {
        let (start, end) = match self.span {
            Some(s) => (
                Some(source.line_col(s.start as usize)),
                Some(source.line_col(s.end as usize)),
            ),
            None => (None, None),
        };
        DiagnosticData {
            severity: self.severity,
            code: self.code.as_str(),
            message: self.message.clone(),
            file: source.name().to_string(),
            line: start.map(|p| p.line),
            column: start.map(|p| p.column),
            end_line: end.map(|p| p.line),
            end_column: end.map(|p| p.column),
            source_line: start.map(|p| source.line_text(p.line).to_string()),
            label: self.label.clone(),
            hint: self.hint.clone(),
            related: self
                .related
                .iter()
                .map(|(span, message)| {
                    let p = source.line_col(span.start as usize);
                    RelatedData {
                        line: p.line,
                        column: p.column,
                        message: message.clone(),
                    }
                })
                .collect(),
        }
    }

    /// Renders the diagnostic for a terminal: `file:line:col`, the source line and a marker under it.
    pub fn render(&self, source: &Source, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(100)
            .with_links(false)
            .with_context_lines(1);
        let report = Rendered {
            diag: self,
            source: NamedSource::new(source.name(), source.text().to_string()),
            src: source,
        };
        let mut out = String::new();
        if handler.render_report(&mut out, &report).is_err() {
            out = format!("{}: {}\n", self.code.as_str(), self.message);
        }
        out
    }
}

struct Rendered<'a> {
    diag: &'a Diagnostic,
    source: NamedSource<String>,
    src: &'a Source,
}

impl fmt::Debug for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Diagnostics without a place say which file they are about; the others show it in the frame.
        if self.diag.span.is_none() {
            write!(f, "{}: ", self.src.name())?;
        }
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for Rendered<'_> {}

impl miette::Diagnostic for Rendered<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diag.code.as_str()))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diag
            .hint
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.diag
            .span
            .map(|_| &self.source as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.diag.span?;
        let primary = LabeledSpan::new_primary_with_span(
            self.diag.label.clone(),
            (span.start as usize, span.len().max(1)),
        );
        let related = self.diag.related.iter().map(|(s, text)| {
            LabeledSpan::new_with_span(Some(text.clone()), (s.start as usize, s.len().max(1)))
        });
        Some(Box::new(std::iter::once(primary).chain(related)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_strings_match_their_serde_names() {
        for code in [
            Code::UnknownKey,
            Code::DependencyCycle,
            Code::BadTimeZone,
            Code::NulByte,
        ] {
            assert_eq!(
                serde_json::to_value(code).ok(),
                Some(serde_json::Value::String(code.as_str().into()))
            );
        }
    }

    #[test]
    fn suggests_close_names_only() {
        let keys = ["timeout", "retries", "rollback"];
        assert_eq!(suggest("tiemout", keys), Some("timeout"));
        assert_eq!(suggest("retry", keys), Some("retries"));
        assert_eq!(suggest("colour", keys), None);
    }
}
