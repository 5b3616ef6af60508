//! Formatting of errors for logs and messages.

/// Formats `error` followed by each of its sources, such as "transport
/// error: tcp connect error: Connection refused". A source whose text
/// already ends the line so far is skipped, since many errors repeat their
/// source in their own text.
pub fn with_sources(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    for source in std::iter::successors(error.source(), |error| error.source()) {
        let part = source.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: &'static str,
        #[source]
        source: Option<Box<Layer>>,
    }

    fn layer(text: &'static str, source: Option<Layer>) -> Layer {
        Layer {
            text,
            source: source.map(Box::new),
        }
    }

    #[test]
    fn joins_each_source_once() {
        let refused = layer("Connection refused", None);
        let connect = layer("tcp connect error", Some(refused));
        let repeated = layer("tcp connect error", Some(connect));
        let error = layer("transport error", Some(repeated));
        assert_eq!(
            with_sources(&error),
            "transport error: tcp connect error: Connection refused"
        );
    }

    #[test]
    fn single_error_is_its_own_text() {
        assert_eq!(with_sources(&layer("closed", None)), "closed");
    }
}
