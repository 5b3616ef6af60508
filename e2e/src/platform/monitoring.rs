//! Prometheus and Alertmanager with the repository's own rules and routing,
//! rewritten for static loopback targets and short timings.
//!
//! The repository's Prometheus configuration finds its targets through
//! Kubernetes pod discovery, so the suite generates one with static targets
//! instead. It keeps the repository's job names and gives each target the
//! labels that the relabelling would give it (`app`, `pod`, `namespace`),
//! because the alert rules match on them. Each binary goes to the job whose
//! `keep` rule accepts its app name and port name, read from the
//! repository's file, so a renamed job or port shows up here as a target
//! with no job.
//!
//! The rule files are copied unchanged except for the `for:` of the
//! service-down alert (see [`alert_rules_copy`]). The Alertmanager
//! configuration is copied unchanged except for the webhook URL and the
//! grouping timers (see [`alertmanager_copy`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;
use serde_yaml_ng::Value;

use super::process::{Managed, Spec};

/// Where the repository keeps the metrics configuration.
const METRICS_DIR: &str = "monitoring/base/metrics";

/// The alert the alerting check waits for.
pub const SERVICE_DOWN_ALERT: &str = "LintasServiceDown";

/// `for:` of the service-down alert in the test copy. The repository's
/// value (2 minutes at the time of writing) would make the run minutes
/// longer.
pub const SERVICE_DOWN_FOR: &str = "5s";

/// Scrape and rule evaluation interval of the generated configuration.
pub const SCRAPE_INTERVAL: &str = "1s";

/// Grouping timers of every route in the Alertmanager copy. The
/// repository waits 10 s to 30 s before the first notification of a group
/// and 5 minutes before the next one, which also delays the "resolved"
/// notification by up to 5 minutes.
const GROUP_WAIT: &str = "1s";
const GROUP_INTERVAL: &str = "2s";

/// A scrape target: one binary's metrics endpoint.
#[derive(Debug, Clone)]
pub struct Target {
    /// The `app.kubernetes.io/name` label of the binary's pods.
    pub app: String,
    /// Name of the container port that serves /metrics in the manifests.
    pub port_name: String,
    /// `HOST:PORT` to scrape.
    pub address: String,
}

/// The generated configuration files, written to the run's artifacts.
pub struct Generated {
    pub prometheus_config: PathBuf,
    pub alertmanager_config: PathBuf,
    /// `for:` of the service-down alert in the repository's rule file.
    pub repository_service_down_for: String,
}

/// Writes the Prometheus configuration, the rule copies and the
/// Alertmanager configuration into `out`.
pub fn generate(
    repository: &Path,
    out: &Path,
    targets: &[Target],
    alertmanager_address: &str,
    webhook_url: &str,
) -> anyhow::Result<Generated> {
    let metrics = repository.join(METRICS_DIR);
    std::fs::create_dir_all(out.join("rules"))?;

    let repository_config = read_yaml(&metrics.join("prometheus.yml"))?;
    let jobs = job_keep_rules(&repository_config)?;
    let scrape_configs = scrape_configs(&jobs, targets)?;

    let mut rule_files = Vec::new();
    let mut repository_service_down_for = None;
    let mut rule_paths: Vec<PathBuf> = std::fs::read_dir(metrics.join("rules"))
        .context("failed to list the repository's rule files")?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "yaml")
        })
        .collect();
    rule_paths.sort();
    for path in rule_paths {
        let mut rules = read_yaml(&path)?;
        if let Some(original) = alert_rules_copy(&mut rules)? {
            repository_service_down_for = Some(original);
        }
        let file_name = path.file_name().context("rule file without a name")?;
        let copy = out.join("rules").join(file_name);
        write_yaml(
            &copy,
            &rules,
            &format!(
                "Copy of {METRICS_DIR}/rules/{}",
                file_name.to_string_lossy()
            ),
        )?;
        rule_files.push(copy.display().to_string());
    }
    let repository_service_down_for = repository_service_down_for.with_context(|| {
        format!("no rule file of {METRICS_DIR}/rules defines {SERVICE_DOWN_ALERT}")
    })?;

    let config = json!({
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "scrape_timeout": SCRAPE_INTERVAL,
            "evaluation_interval": SCRAPE_INTERVAL,
        },
        "rule_files": rule_files,
        "alerting": {
            "alertmanagers": [{ "static_configs": [{ "targets": [alertmanager_address] }] }],
        },
        "scrape_configs": scrape_configs,
    });
    let prometheus_config = out.join("prometheus.yml");
    write_yaml(
        &prometheus_config,
        &serde_yaml_ng::to_value(&config)?,
        &format!(
            "Generated from {METRICS_DIR}/prometheus.yml: the same job names, static loopback targets"
        ),
    )?;

    let mut alertmanager = read_yaml(&metrics.join("alertmanager.yml"))?;
    alertmanager_copy(&mut alertmanager, webhook_url)?;
    let alertmanager_config = out.join("alertmanager.yml");
    write_yaml(
        &alertmanager_config,
        &alertmanager,
        &format!(
            "Copy of {METRICS_DIR}/alertmanager.yml with the webhook URL of the suite and group_wait {GROUP_WAIT}, group_interval {GROUP_INTERVAL}"
        ),
    )?;

    Ok(Generated {
        prometheus_config,
        alertmanager_config,
        repository_service_down_for,
    })
}

/// Shortens the `for:` of the service-down alert in a rule file, and
/// returns the original value when the file defines that alert.
pub fn alert_rules_copy(rules: &mut Value) -> anyhow::Result<Option<String>> {
    let mut original = None;
    let Some(groups) = rules.get_mut("groups").and_then(Value::as_sequence_mut) else {
        bail!("rule file without a groups list");
    };
    for group in groups {
        let Some(group_rules) = group.get_mut("rules").and_then(Value::as_sequence_mut) else {
            continue;
        };
        for rule in group_rules {
            if rule.get("alert").and_then(Value::as_str) != Some(SERVICE_DOWN_ALERT) {
                continue;
            }
            let mapping = rule.as_mapping_mut().context("rule is not a mapping")?;
            let previous = mapping.insert("for".into(), SERVICE_DOWN_FOR.into());
            original = Some(
                previous
                    .and_then(|value| value.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "0s".to_owned()),
            );
        }
    }
    Ok(original)
}

/// Points every webhook receiver at `webhook_url` and shortens the grouping
/// timers of the route tree. Matchers, receivers, grouping labels and
/// inhibition rules stay as they are.
pub fn alertmanager_copy(config: &mut Value, webhook_url: &str) -> anyhow::Result<()> {
    let route = config
        .get_mut("route")
        .context("alertmanager.yml has no route")?;
    shorten_route_timers(route, true);

    let receivers = config
        .get_mut("receivers")
        .and_then(Value::as_sequence_mut)
        .context("alertmanager.yml has no receivers list")?;
    let mut webhooks = 0;
    for receiver in receivers {
        let Some(configs) = receiver
            .get_mut("webhook_configs")
            .and_then(Value::as_sequence_mut)
        else {
            continue;
        };
        for webhook in configs {
            let mapping = webhook
                .as_mapping_mut()
                .context("webhook_configs entry is not a mapping")?;
            mapping.remove("url_file");
            mapping.insert("url".into(), webhook_url.into());
            webhooks += 1;
        }
    }
    if webhooks == 0 {
        bail!("alertmanager.yml has no webhook receiver to point at the test receiver");
    }
    Ok(())
}

fn shorten_route_timers(route: &mut Value, is_root: bool) {
    if let Some(mapping) = route.as_mapping_mut() {
        for (key, value) in [
            ("group_wait", GROUP_WAIT),
            ("group_interval", GROUP_INTERVAL),
        ] {
            if is_root || mapping.contains_key(key) {
                mapping.insert(key.into(), value.into());
            }
        }
    }
    if let Some(children) = route.get_mut("routes").and_then(Value::as_sequence_mut) {
        for child in children {
            shorten_route_timers(child, false);
        }
    }
}

/// Reads each job of the repository's configuration with the regex of its
/// `keep` rule on `app.kubernetes.io/name` and the container port name.
fn job_keep_rules(config: &Value) -> anyhow::Result<Vec<(String, regex::Regex)>> {
    let jobs = config
        .get("scrape_configs")
        .and_then(Value::as_sequence)
        .context("prometheus.yml has no scrape_configs")?;
    let mut rules = Vec::new();
    for job in jobs {
        let name = job
            .get("job_name")
            .and_then(Value::as_str)
            .context("scrape config without job_name")?;
        let keep = job
            .get("relabel_configs")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .find(|rule| {
                rule.get("action").and_then(Value::as_str) == Some("keep")
                    && rule
                        .get("source_labels")
                        .and_then(Value::as_sequence)
                        .is_some_and(|labels| {
                            labels.len() == 2
                                && labels[0].as_str()
                                    == Some("__meta_kubernetes_pod_label_app_kubernetes_io_name")
                        })
            });
        let Some(pattern) = keep
            .and_then(|rule| rule.get("regex"))
            .and_then(Value::as_str)
        else {
            continue;
        };
        // Prometheus anchors relabelling regexes at both ends.
        let regex = regex::Regex::new(&format!("^(?:{pattern})$"))
            .with_context(|| format!("invalid keep regex of job {name}: {pattern}"))?;
        rules.push((name.to_owned(), regex));
    }
    Ok(rules)
}

fn scrape_configs(
    jobs: &[(String, regex::Regex)],
    targets: &[Target],
) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut configs = Vec::new();
    for (job, regex) in jobs {
        let static_configs: Vec<serde_json::Value> = targets
            .iter()
            .filter(|target| regex.is_match(&format!("{};{}", target.app, target.port_name)))
            .map(|target| {
                json!({
                    "targets": [target.address],
                    "labels": {
                        "app": target.app,
                        "namespace": "lintas",
                        "pod": format!("{}-e2e", target.app),
                    },
                })
            })
            .collect();
        if !static_configs.is_empty() {
            configs.push(json!({ "job_name": job, "static_configs": static_configs }));
        }
    }
    for target in targets {
        let kept = jobs
            .iter()
            .any(|(_, regex)| regex.is_match(&format!("{};{}", target.app, target.port_name)));
        if !kept {
            bail!(
                "no job of {METRICS_DIR}/prometheus.yml keeps app {} on port {}",
                target.app,
                target.port_name
            );
        }
    }
    Ok(configs)
}

fn read_yaml(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    serde_yaml_ng::from_str(&text).with_context(|| format!("{} is not valid YAML", path.display()))
}

fn write_yaml(path: &Path, value: &Value, header: &str) -> anyhow::Result<()> {
    let body = serde_yaml_ng::to_string(value)?;
    std::fs::write(
        path,
        format!("# {header}, written by the end-to-end suite.\n{body}"),
    )
    .with_context(|| format!("failed to write {}", path.display()))
}

/// Starts Prometheus with the generated configuration and a temporary
/// storage folder.
pub fn start_prometheus(
    config: &Path,
    storage: &Path,
    address: &str,
    artifacts: &Path,
) -> anyhow::Result<Managed> {
    let spec = Spec::new("prometheus", "prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", storage.display()))
        .arg(format!("--web.listen-address={address}"))
        .arg("--storage.tsdb.retention.time=1h");
    Managed::start(spec, artifacts)
}

/// Starts Alertmanager with the generated configuration, clustering off.
pub fn start_alertmanager(
    config: &Path,
    storage: &Path,
    address: &str,
    artifacts: &Path,
) -> anyhow::Result<Managed> {
    let spec = Spec::new("alertmanager", alertmanager_program())
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", storage.display()))
        .arg(format!("--web.listen-address={address}"))
        // An empty address turns the gossip cluster off, which would
        // otherwise listen on every interface.
        .arg("--cluster.listen-address=");
    Managed::start(spec, artifacts)
}

/// Debian installs Alertmanager as `prometheus-alertmanager`; elsewhere it
/// is `alertmanager`.
fn alertmanager_program() -> &'static str {
    let debian = Path::new("/usr/bin/prometheus-alertmanager");
    if debian.exists() {
        "/usr/bin/prometheus-alertmanager"
    } else {
        "alertmanager"
    }
}

/// Polls `GET URL/-/ready` until it returns 200.
pub async fn wait_ready(
    client: &reqwest::Client,
    base_url: &str,
    process: &mut Managed,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Ok(response) = client.get(format!("{base_url}/-/ready")).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        process.ensure_running()?;
        if std::time::Instant::now() >= deadline {
            bail!(
                "{} was not ready within {} s (log: {})",
                process.spec.name,
                timeout.as_secs(),
                process.log_path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repository() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn generated_configs_keep_jobs_and_routing() {
        let out = tempfile::tempdir().unwrap();
        let targets = [
            ("gateway", "http", "127.0.0.1:1"),
            ("user-svc", "metrics", "127.0.0.1:2"),
            ("order-svc", "metrics", "127.0.0.1:3"),
        ]
        .map(|(app, port_name, address)| Target {
            app: app.to_owned(),
            port_name: port_name.to_owned(),
            address: address.to_owned(),
        });
        let generated = generate(
            &repository(),
            out.path(),
            &targets,
            "127.0.0.1:4",
            "http://127.0.0.1:5/alerts",
        )
        .unwrap();

        let prometheus = read_yaml(&generated.prometheus_config).unwrap();
        let jobs: Vec<&str> = prometheus["scrape_configs"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|job| job["job_name"].as_str().unwrap())
            .collect();
        assert_eq!(jobs, ["lintas-gateway", "lintas-services"]);

        let alertmanager = read_yaml(&generated.alertmanager_config).unwrap();
        let original = read_yaml(&repository().join(METRICS_DIR).join("alertmanager.yml")).unwrap();
        assert_eq!(alertmanager["inhibit_rules"], original["inhibit_rules"]);
        assert_eq!(
            alertmanager["route"]["receiver"],
            original["route"]["receiver"]
        );
        assert_eq!(
            alertmanager["route"]["group_by"],
            original["route"]["group_by"]
        );
        let text = std::fs::read_to_string(&generated.alertmanager_config).unwrap();
        assert!(text.contains("http://127.0.0.1:5/alerts"), "{text}");
        assert!(!text.contains("url_file"), "{text}");
    }

    #[test]
    fn service_down_alert_gets_short_for() {
        let mut rules: Value = serde_yaml_ng::from_str(
            "groups:\n- name: g\n  rules:\n  - alert: LintasServiceDown\n    expr: up == 0\n    for: 2m\n  - alert: Other\n    expr: up == 0\n    for: 2m\n",
        )
        .unwrap();
        let original = alert_rules_copy(&mut rules).unwrap();
        assert_eq!(original.as_deref(), Some("2m"));
        assert_eq!(rules["groups"][0]["rules"][0]["for"], SERVICE_DOWN_FOR);
        assert_eq!(rules["groups"][0]["rules"][1]["for"], "2m");
    }
}
