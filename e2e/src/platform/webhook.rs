//! The webhook receiver that the Alertmanager copy notifies: it stores
//! every notification body (Alertmanager's webhook JSON, version 4).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub struct WebhookReceiver {
    /// URL to configure as the webhook, ending in `/alerts`.
    pub url: String,
    notifications: Arc<Mutex<Vec<Value>>>,
    _stop: oneshot::Sender<()>,
}

impl WebhookReceiver {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/alerts", listener.local_addr()?);
        let notifications = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/alerts", post(receive))
            .with_state(notifications.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self {
            url,
            notifications,
            _stop: stop,
        })
    }

    /// Returns every notification received so far, oldest first.
    pub fn notifications(&self) -> Vec<Value> {
        self.notifications
            .lock()
            .expect("notification store lock")
            .clone()
    }

    /// Polls until a notification satisfies `matches`, or `timeout` passes.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self.notifications().into_iter().find(|body| matches(body)) {
                return Some(found);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn receive(
    State(notifications): State<Arc<Mutex<Vec<Value>>>>,
    Json(body): Json<Value>,
) -> StatusCode {
    notifications
        .lock()
        .expect("notification store lock")
        .push(body);
    StatusCode::OK
}
