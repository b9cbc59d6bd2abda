//! `slipway demo`: a whole deployment story on this machine, with nothing installed but the build.
//!
//! It writes a plan that deploys a small versioned HTTP service (this binary's hidden
//! `demo-service`) to three local targets on loopback ports, then deploys v1, a healthy v2, and a
//! v3 whose health check fails and is rolled back to v2 automatically.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::Subcommand;
use slipway_core::lifecycle::DeploymentState;
use slipway_engine::{DeployRequest, Secrets};
use slipway_store::{DeploymentFilter, Store};

use crate::context::{Context, Global, engine_error};
use crate::exit::{FAILED, OK, UNREADABLE, fail};
use crate::output::{Format, table, took};
use crate::progress::Printer;

#[derive(Subcommand)]
pub enum ServiceCommand {
    /// Serve in the foreground: `/` says the version, `/health` says whether it is healthy.
    Run {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        config: PathBuf,
    },
    /// Stop the instance in `pidfile` (if any), start a new one in the background, wait for it.
    Restart {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        pidfile: PathBuf,
        #[arg(long)]
        log: PathBuf,
    },
    /// Stop the instance in `pidfile`.
    Stop {
        #[arg(long)]
        pidfile: PathBuf,
    },
}

struct ServiceConfig {
    version: String,
    healthy: bool,
}

fn read_config(path: &Path) -> anyhow::Result<ServiceConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| fail(UNREADABLE, format!("{}: {e}", path.display())))?;
    let mut config = ServiceConfig {
        version: "unknown".into(),
        healthy: true,
    };
    for line in text.lines() {
        match line.split_once('=') {
            Some(("version", v)) => config.version = v.trim().to_string(),
            Some(("healthy", v)) => config.healthy = v.trim() == "true",
            _ => {}
        }
    }
    Ok(config)
}

pub fn service(command: ServiceCommand) -> anyhow::Result<u8> {
    match command {
        ServiceCommand::Run { port, config } => crate::context::block_on(serve(port, config)),
        ServiceCommand::Restart {
            port,
            config,
            pidfile,
            log,
        } => {
            stop(&pidfile);
            wait_until(Duration::from_secs(5), || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
            });
            let config = std::fs::canonicalize(&config)
                .map_err(|e| fail(UNREADABLE, format!("{}: {e}", config.display())))?;
            let log_file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)?;
            let exe = std::env::current_exe()?;
            let child = std::process::Command::new(exe)
                .args([
                    "demo-service",
                    "run",
                    "--port",
                    &port.to_string(),
                    "--config",
                ])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone()?)
                .stderr(log_file)
                // Its own process group: it outlives the step that started it.
                .process_group(0)
                .spawn()?;
            std::fs::write(&pidfile, child.id().to_string())?;
            if !wait_until(Duration::from_secs(5), || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            }) {
                return Err(fail(
                    FAILED,
                    format!("the demo service did not start listening on port {port}"),
                ));
            }
            println!(
                "demo service (pid {}) listening on 127.0.0.1:{port}",
                child.id()
            );
            Ok(OK)
        }
        ServiceCommand::Stop { pidfile } => {
            stop(&pidfile);
            Ok(OK)
        }
    }
}

fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    ready()
}

fn stop(pidfile: &Path) {
    let Some(pid) = std::fs::read_to_string(pidfile)
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
    else {
        return;
    };
    let _ = std::process::Command::new("kill")
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
    let gone = wait_until(Duration::from_secs(3), || {
        !Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid)
    });
    if !gone {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    }
    let _ = std::fs::remove_file(pidfile);
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

async fn serve(port: u16, config: PathBuf) -> anyhow::Result<u8> {
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;
    let cfg = read_config(&config)?;
    let version = cfg.version.clone();
    let healthy = cfg.healthy;
    let app = Router::new()
        .route("/", get(move || async move { format!("demo {version}\n") }))
        .route(
            "/health",
            get(move || async move {
                if healthy {
                    (StatusCode::OK, "ok\n")
                } else {
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "unhealthy: this build fails its health check\n",
                    )
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(OK)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn demo_plan(exe: &Path, ports: &[u16], run: &Path) -> String {
    let mut targets = String::new();
    for (i, port) in ports.iter().enumerate() {
        let n = i + 1;
        targets.push_str(&format!(
            "      web-{n}: {{ host: local, labels: [web], vars: {{ port: {port}, pidfile: \"{}\", log: \"{}\" }} }}\n",
            run.join(format!("web-{n}.pid")).display(),
            run.join(format!("web-{n}.log")).display()
        ));
    }
    format!(
        r#"# Written by `slipway demo`: a small versioned HTTP service on three local targets.
slipway: 1
release:
  name: demo
  version: 1.0.0
  change: DEMO-1
  summary: The Slipway demo service
  owner: demo
artifact:
  path: "dist/demo-{{{{ release.version }}}}.conf"
variables:
  slipway: "{exe}"
environments:
  local:
    targets:
{targets}steps:
  - id: install
    description: Unpack the release and restart the service on it
    on: [web]
    release_dir: demo
    run: cp "$SLIPWAY_ARTIFACT" app.conf
    activate: ["{{{{ vars.slipway }}}}", demo-service, restart, --port, "{{{{ vars.port }}}}", --config, app.conf, --pidfile, "{{{{ vars.pidfile }}}}", --log, "{{{{ vars.log }}}}"]
    timeout: 30s
    strategy:
      rolling: {{ batch: 1 }}
    validate:
      - http: "http://{{{{ target.address }}}}:{{{{ vars.port }}}}/health"
        expect: {{ status: 200, body_contains: ok }}
        interval: 200ms
        deadline: 3s
"#,
        exe = exe.display()
    )
}

pub async fn run(global: &Global, keep: bool, dir: Option<PathBuf>) -> anyhow::Result<u8> {
    let started = Instant::now();
    let temp;
    let ws = match dir {
        Some(d) => {
            std::fs::create_dir_all(&d)?;
            std::fs::canonicalize(d)?
        }
        None => {
            temp = std::env::temp_dir().join(format!("slipway-demo-{}", std::process::id()));
            std::fs::create_dir_all(&temp)?;
            temp
        }
    };
    let home = ws.join("home");
    let run_dir = ws.join("run");
    let dist = ws.join("dist");
    for d in [&home, &run_dir, &dist] {
        std::fs::create_dir_all(d)?;
    }
    let database = ws.join("slipway.db").display().to_string();
    let ports = [free_port()?, free_port()?, free_port()?];
    for (version, healthy) in [("1.0.0", true), ("2.0.0", true), ("3.0.0", false)] {
        std::fs::write(
            dist.join(format!("demo-{version}.conf")),
            format!("version={version}\nhealthy={healthy}\n"),
        )?;
    }
    let exe = std::env::current_exe()?;
    let plan_path = ws.join("demo.slipway.yaml");
    std::fs::write(&plan_path, demo_plan(&exe, &ports, &run_dir))?;
    let human = global.format == Format::Human;
    let say = |s: String| {
        if human {
            println!("{s}");
        }
    };
    say(format!("Slipway demo in {}", ws.display()));
    say(format!("  plan:   {}", plan_path.display()));
    say(format!("  record: {database}"));
    say(format!(
        "  targets web-1, web-2, web-3 on 127.0.0.1 ports {}, {}, {}",
        ports[0], ports[1], ports[2]
    ));
    let demo_global = Global {
        format: global.format,
        database: Some(database.clone()),
        home: Some(home.clone()),
        actor: Some(global.actor()),
    };
    let ctx = Context::open(&demo_global).await?;
    let loaded = slipway_core::load(
        &plan_path.display().to_string(),
        std::fs::read(&plan_path)?.as_slice(),
    )
    .map_err(|e| fail(FAILED, format!("the demo plan is invalid: {e}")))?;
    let printer = Printer::new(human, false);
    let stages = [
        (
            "1.0.0",
            "deploy v1.0.0 to three targets, one at a time, each checked over HTTP",
        ),
        (
            "2.0.0",
            "deploy v2.0.0, healthy: every target switches and passes its check",
        ),
        (
            "3.0.0",
            "deploy v3.0.0, whose health check fails: Slipway rolls back to v2.0.0 by itself",
        ),
    ];
    let mut outcome = Vec::new();
    for (i, (version, what)) in stages.iter().enumerate() {
        say(String::new());
        say(format!("Stage {}: {what}", i + 1));
        let request = DeployRequest {
            plan: loaded.clone(),
            plan_file: plan_path.clone(),
            environment: "local".into(),
            version: Some(version.to_string()),
            requester: demo_global.actor(),
            origin: "cli".into(),
        };
        let d = ctx
            .engine
            .deploy(&request, Secrets::default(), &printer)
            .await
            .map_err(engine_error)?;
        let serving = served_versions(&ports).await;
        say(format!(
            "  → deployment #{} {} in {}; the targets now serve: {}",
            d.id,
            d.state,
            took(d.started_at, d.finished_at),
            serving.join(", ")
        ));
        outcome.push((version.to_string(), d.state, serving));
    }
    let expected = [
        DeploymentState::Succeeded,
        DeploymentState::Succeeded,
        DeploymentState::RolledBack,
    ];
    let as_expected = outcome.iter().zip(expected).all(|((_, s, _), e)| *s == e)
        && outcome[2].2.iter().all(|v| v == "demo 2.0.0");
    let inventory = ctx.store.inventory(Some("local")).await?;
    let history = ctx.store.deployments(DeploymentFilter::default()).await?;
    let chain = ctx.store.verify_chain().await?;
    if human {
        println!();
        println!("Inventory (which release each target runs, and keeps):");
        let mut t = table(&["target", "current", "previous", "kept"]);
        for r in &inventory {
            t.add_row(vec![
                r.target.clone(),
                r.current.clone().unwrap_or_default(),
                r.previous.clone().unwrap_or_default(),
                r.kept.join(", "),
            ]);
        }
        println!("{t}");
        println!("History:");
        let mut t = table(&["id", "version", "state", "took"]);
        for d in history.iter().rev() {
            t.add_row(vec![
                format!("#{}", d.id),
                d.version.clone().unwrap_or_default(),
                d.state.to_string(),
                took(d.started_at, d.finished_at),
            ]);
        }
        println!("{t}");
        match &chain.first_bad {
            None => println!("Audit log: {} events, hash chain intact.", chain.events),
            Some((seq, why)) => println!("Audit log BROKEN at event {seq}: {why}"),
        }
        println!();
        println!("The record is in {database}. Look around with:");
        println!("  slipway --database {database} history");
        println!("  slipway --database {database} logs 3 --target web-1");
        println!("  slipway --database {database} audit verify");
    }
    if keep {
        say(format!(
            "The services keep running (--keep): curl http://127.0.0.1:{}/",
            ports[0]
        ));
    } else {
        for n in 1..=3 {
            stop(&run_dir.join(format!("web-{n}.pid")));
        }
        say("Stopped the demo services.".into());
    }
    if global.format == Format::Json {
        crate::output::print_json(&serde_json::json!({
            "workspace": ws,
            "database": database,
            "ports": ports,
            "stages": outcome.iter().map(|(v, s, serving)| serde_json::json!({"version": v, "state": s, "serving": serving})).collect::<Vec<_>>(),
            "inventory": inventory,
            "audit_events": chain.events,
            "audit_intact": chain.first_bad.is_none(),
            "as_expected": as_expected,
        }))?;
    }
    say(format!(
        "Demo finished in {:.1}s{}",
        started.elapsed().as_secs_f64(),
        if as_expected {
            "."
        } else {
            " — NOT as expected."
        }
    ));
    Ok(if as_expected && chain.first_bad.is_none() {
        OK
    } else {
        FAILED
    })
}

/// What each demo target answers on `/` right now.
async fn served_versions(ports: &[u16]) -> Vec<String> {
    let client = reqwest_client();
    let mut out = Vec::new();
    for port in ports {
        let text = match client.get(format!("http://127.0.0.1:{port}/")).send().await {
            Ok(r) => r.text().await.unwrap_or_default().trim().to_string(),
            Err(_) => "nothing".into(),
        };
        out.push(text);
    }
    out
}

fn reqwest_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap_or_default()
}
