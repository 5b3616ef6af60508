//! Formatting of errors for logs and messages.

/// Formats `error` followed by each of its sources, such as "transport
/// error: tcp connect error: Connection refused". A source whose text
/// already appears in the line so far is skipped, since many errors repeat
/// their source in their own text.
pub fn with_sources(error: &(dyn std::error::Error + 'static)) -> String {
    append_sources(error.to_string(), error.source())
}

/// Formats a gRPC status as its message followed by its sources, without
/// the code and the debug form of the source that its `Display` adds.
pub fn status_text(status: &tonic::Status) -> String {
    append_sources(
        status.message().to_owned(),
        std::error::Error::source(status),
    )
}

fn append_sources(mut text: String, first: Option<&(dyn std::error::Error + 'static)>) -> String {
    for source in std::iter::successors(first, |error| error.source()) {
        let part = source.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
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
    fn status_text_joins_message_and_sources() {
        let mut status = tonic::Status::unavailable("tcp connect error");
        status.set_source(std::sync::Arc::new(layer(
            "transport error",
            Some(layer("Connection refused", None)),
        )));
        assert_eq!(
            status_text(&status),
            "tcp connect error: transport error: Connection refused"
        );

        let mut repeated = tonic::Status::unavailable("127.0.0.1:1: transport error: closed");
        repeated.set_source(std::sync::Arc::new(layer(
            "transport error",
            Some(layer("closed", None)),
        )));
        assert_eq!(
            status_text(&repeated),
            "127.0.0.1:1: transport error: closed"
        );
    }

    #[test]
    fn single_error_is_its_own_text() {
        assert_eq!(with_sources(&layer("closed", None)), "closed");
    }
}
