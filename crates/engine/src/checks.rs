//! Validation gates: HTTP, TCP and command checks, retried at an interval until a deadline.

use std::time::{Duration, Instant};

use crate::host::{Exec, Host, Program};

/// A check with its templates resolved for one target.
#[derive(Debug, Clone)]
pub enum Probe {
    Http {
        url: String,
        status: u16,
        body_contains: Option<String>,
        latency_below: Option<Duration>,
    },
    Tcp {
        address: String,
    },
    Command {
        exec: Exec,
    },
}

impl Probe {
    pub fn describe(&self) -> String {
        match self {
            Probe::Http { url, .. } => format!("http {url}"),
            Probe::Tcp { address } => format!("tcp {address}"),
            Probe::Command { exec } => match &exec.program {
                Program::Argv(a) => format!("command {}", a.join(" ")),
                Program::Shell(s) => format!("command {s}"),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct CheckOutcome {
    pub passed: bool,
    pub attempts: u32,
    /// Why the last attempt failed (or what the passing one saw).
    pub detail: String,
    pub elapsed: Duration,
}

/// Tries `probe` every `interval` until it passes or `deadline` has passed.
pub async fn run(
    probe: &Probe,
    interval: Duration,
    deadline: Duration,
    host: &dyn Host,
    http: &reqwest::Client,
) -> CheckOutcome {
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let remaining = deadline
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(200));
        let attempt = tokio::time::timeout(
            remaining.min(Duration::from_secs(30)),
            once(probe, host, http, remaining),
        )
        .await;
        let (passed, detail) = match attempt {
            Ok(Ok(detail)) => (true, detail),
            Ok(Err(detail)) => (false, detail),
            Err(_) => (false, "no answer before the deadline".to_string()),
        };
        if passed || started.elapsed() + interval > deadline {
            return CheckOutcome {
                passed,
                attempts,
                detail,
                elapsed: started.elapsed(),
            };
        }
        tokio::time::sleep(interval).await;
    }
}

async fn once(
    probe: &Probe,
    host: &dyn Host,
    http: &reqwest::Client,
    remaining: Duration,
) -> Result<String, String> {
    match probe {
        Probe::Http {
            url,
            status,
            body_contains,
            latency_below,
        } => {
            let started = Instant::now();
            let response = http
                .get(url)
                .timeout(remaining.min(Duration::from_secs(10)))
                .send()
                .await
                .map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
            let got = response.status().as_u16();
            let body = response
                .text()
                .await
                .map_err(|e| format!("GET {url}: reading the body: {e}"))?;
            let latency = started.elapsed();
            if got != *status {
                return Err(format!("GET {url} answered {got}, expected {status}"));
            }
            if let Some(needle) = body_contains
                && !body.contains(needle.as_str())
            {
                return Err(format!("GET {url}: the body does not contain `{needle}`"));
            }
            if let Some(limit) = latency_below
                && latency >= *limit
            {
                return Err(format!(
                    "GET {url} took {} ms, above the {} ms limit",
                    latency.as_millis(),
                    limit.as_millis()
                ));
            }
            Ok(format!(
                "GET {url} answered {got} in {} ms",
                latency.as_millis()
            ))
        }
        Probe::Tcp { address } => {
            let started = Instant::now();
            tokio::net::TcpStream::connect(address.as_str())
                .await
                .map_err(|e| format!("connect {address}: {e}"))?;
            Ok(format!(
                "connected to {address} in {} ms",
                started.elapsed().as_millis()
            ))
        }
        Probe::Command { exec } => {
            let outcome = host.exec(exec.clone()).await.map_err(|e| e.to_string())?;
            if outcome.status.success() {
                Ok("command exited 0".into())
            } else {
                let tail = String::from_utf8_lossy(&outcome.output);
                let tail: String = tail
                    .lines()
                    .last()
                    .unwrap_or("")
                    .chars()
                    .take(200)
                    .collect();
                Err(format!("command {}: {tail}", outcome.status.describe()))
            }
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
