//! Telemetry settings, read from the standard OpenTelemetry environment
//! variables and `LOKI_URL`.

use opentelemetry_sdk::trace::Sampler;

/// Log line format on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    #[default]
    Json,
    /// Human-readable lines, for a terminal.
    Pretty,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "json" => Ok(Self::Json),
            "pretty" => Ok(Self::Pretty),
            other => Err(format!(
                "invalid log format {other:?}, expected \"json\" or \"pretty\""
            )),
        }
    }
}

/// Sampling strategy at the root of a trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerKind {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedTraceIdRatio(f64),
}

/// Everything [`crate::init`] needs.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// `service.name` of spans and the `service` label and field of logs.
    pub service_name: String,
    /// `deployment.environment.name` and the `environment` log label.
    pub environment: String,
    pub log_format: LogFormat,
    /// OTLP/gRPC endpoint, for example `http://jaeger:4317`; no export when unset.
    pub otlp_endpoint: Option<String>,
    pub sampler: SamplerKind,
    /// Loki base URL, for example `http://loki:3100`; no push when unset.
    pub loki_url: Option<url::Url>,
}

impl TelemetryConfig {
    /// Reads the configuration from the process environment:
    /// `OTEL_SERVICE_NAME` (else `default_service_name`),
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`,
    /// `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`,
    /// `DEPLOYMENT_ENVIRONMENT` (default `development`) and `LOKI_URL`.
    pub fn from_env(default_service_name: &str, log_format: LogFormat) -> anyhow::Result<Self> {
        Self::from_lookup(default_service_name, log_format, |name| {
            std::env::var(name).ok()
        })
    }

    /// Same as [`TelemetryConfig::from_env`], with a custom variable lookup.
    pub fn from_lookup(
        default_service_name: &str,
        log_format: LogFormat,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let non_empty = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let loki_url = non_empty("LOKI_URL")
            .map(|text| loki_base(&text))
            .transpose()?;
        Ok(Self {
            service_name: non_empty("OTEL_SERVICE_NAME")
                .unwrap_or_else(|| default_service_name.to_owned()),
            environment: non_empty("DEPLOYMENT_ENVIRONMENT")
                .unwrap_or_else(|| "development".to_owned()),
            log_format,
            otlp_endpoint: non_empty("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                .or_else(|| non_empty("OTEL_EXPORTER_OTLP_ENDPOINT")),
            sampler: parse_sampler(
                non_empty("OTEL_TRACES_SAMPLER").as_deref(),
                non_empty("OTEL_TRACES_SAMPLER_ARG").as_deref(),
            )?,
            loki_url,
        })
    }

    /// Builds the SDK sampler.
    pub fn sampler(&self) -> Sampler {
        match self.sampler {
            SamplerKind::AlwaysOn => Sampler::AlwaysOn,
            SamplerKind::AlwaysOff => Sampler::AlwaysOff,
            SamplerKind::TraceIdRatio(ratio) => Sampler::TraceIdRatioBased(ratio),
            SamplerKind::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            SamplerKind::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            SamplerKind::ParentBasedTraceIdRatio(ratio) => {
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
            }
        }
    }

    pub fn sampler_description(&self) -> String {
        format!("{:?}", self.sampler)
    }
}

/// Parses the sampler variables as the OpenTelemetry specification names
/// them. The default is parent-based with ratio 1.0, so development
/// traces are complete; production sets `OTEL_TRACES_SAMPLER_ARG=0.1`.
fn parse_sampler(name: Option<&str>, argument: Option<&str>) -> anyhow::Result<SamplerKind> {
    let ratio = || -> anyhow::Result<f64> {
        match argument {
            None => Ok(1.0),
            Some(text) => {
                let ratio: f64 = text.trim().parse().map_err(|_| {
                    anyhow::anyhow!(
                        "invalid OTEL_TRACES_SAMPLER_ARG {text:?}: expected a number from 0 to 1"
                    )
                })?;
                if !(0.0..=1.0).contains(&ratio) {
                    anyhow::bail!(
                        "invalid OTEL_TRACES_SAMPLER_ARG {text:?}: expected a number from 0 to 1"
                    );
                }
                Ok(ratio)
            }
        }
    };
    Ok(match name.unwrap_or("parentbased_traceidratio") {
        "always_on" => SamplerKind::AlwaysOn,
        "always_off" => SamplerKind::AlwaysOff,
        "traceidratio" => SamplerKind::TraceIdRatio(ratio()?),
        "parentbased_always_on" => SamplerKind::ParentBasedAlwaysOn,
        "parentbased_always_off" => SamplerKind::ParentBasedAlwaysOff,
        "parentbased_traceidratio" => SamplerKind::ParentBasedTraceIdRatio(ratio()?),
        other => anyhow::bail!(
            "invalid OTEL_TRACES_SAMPLER {other:?}: expected always_on, always_off, traceidratio, \
             parentbased_always_on, parentbased_always_off or parentbased_traceidratio"
        ),
    })
}

/// Parses `LOKI_URL`, which must be an http or https URL with a host.
/// `localhost:3100` parses as a URL of scheme `localhost`, so the scheme is
/// checked by name.
fn loki_base(text: &str) -> anyhow::Result<url::Url> {
    let redacted = without_credentials(text);
    let url = url::Url::parse(text)
        .map_err(|error| anyhow::anyhow!("invalid LOKI_URL {redacted:?}: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        anyhow::bail!(
            "invalid LOKI_URL {redacted:?}: must be an http or https URL with a host, \
             as in http://loki:3100"
        );
    }
    Ok(url)
}

/// Returns `text` with the user and password of a URL replaced by `***`,
/// so that an error message does not print them.
fn without_credentials(text: &str) -> String {
    let Some(start) = text.find("://").map(|index| index + 3) else {
        return text.to_owned();
    };
    let end = text[start..]
        .find(['/', '?', '#'])
        .map_or(text.len(), |offset| start + offset);
    match text[start..end].rfind('@') {
        Some(at) => format!("{}***{}", &text[..start], &text[start + at..]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(variables: &[(&str, &str)]) -> anyhow::Result<TelemetryConfig> {
        let map: HashMap<String, String> = variables
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        TelemetryConfig::from_lookup("gateway", LogFormat::Json, |name| map.get(name).cloned())
    }

    #[test]
    fn defaults_export_nothing_and_sample_everything() {
        let config = config(&[]).unwrap();
        assert_eq!(config.service_name, "gateway");
        assert_eq!(config.otlp_endpoint, None);
        assert_eq!(config.loki_url, None);
        assert_eq!(config.sampler, SamplerKind::ParentBasedTraceIdRatio(1.0));
    }

    #[test]
    fn standard_variables_are_read() {
        let config = config(&[
            ("OTEL_SERVICE_NAME", "edge"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.1"),
            ("LOKI_URL", "http://loki:3100"),
        ])
        .unwrap();
        assert_eq!(config.service_name, "edge");
        assert_eq!(
            config.otlp_endpoint.as_deref(),
            Some("http://collector:4317")
        );
        assert_eq!(config.sampler, SamplerKind::ParentBasedTraceIdRatio(0.1));
        assert_eq!(config.loki_url.unwrap().as_str(), "http://loki:3100/");
    }

    #[test]
    fn invalid_values_are_rejected() {
        assert!(config(&[("OTEL_TRACES_SAMPLER", "sometimes")]).is_err());
        assert!(config(&[("OTEL_TRACES_SAMPLER_ARG", "1.5")]).is_err());
        assert!(config(&[("OTEL_TRACES_SAMPLER_ARG", "half")]).is_err());
        assert!(config(&[("LOKI_URL", "not a url")]).is_err());
        let error = config(&[("LOKI_URL", "ftp://user:s3cret@loki")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("ftp://***@loki"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
        for text in ["localhost:3100", "ftp://loki:3100", "file:///tmp/loki"] {
            let error = config(&[("LOKI_URL", text)]).unwrap_err().to_string();
            assert!(error.contains(text), "{error}");
            assert!(error.contains("http or https"), "{error}");
        }
    }
}
