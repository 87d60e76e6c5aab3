//! `lock`, `unlock` and `status`: the daemon's session state.

use super::{prompt, Ctx};
use clap::Args;
use composer_keyd::protocol::{Ack, Status, UnlockRequest};
use composer_keyd::secret::to_json_zeroizing;
use hyper::Method;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

async fn status_of(ctx: &Ctx) -> anyhow::Result<Status> {
    Ok(ctx
        .connect()
        .await?
        .call(Method::GET, "/v1/status", None)
        .await?)
}

pub async fn lock(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let _: Ack = ctx
        .connect()
        .await?
        .call(Method::POST, "/v1/lock", None)
        .await?;
    println!("Locked: decrypted secrets were wiped from the daemon's memory. Run `composer-keyd unlock` to use them again.");
    Ok(ExitCode::SUCCESS)
}

pub async fn unlock(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let status = status_of(ctx).await?;
    let req = match status.backend {
        composer_keyd::protocol::BackendKind::Vault => UnlockRequest {
            passphrase: Some(prompt::read_passphrase(false)?),
        },
        _ => UnlockRequest::default(),
    };
    let body = to_json_zeroizing(&req);
    let _: Ack = ctx
        .connect()
        .await?
        .call(Method::POST, "/v1/unlock", Some(body))
        .await?;
    println!("Unlocked.");
    Ok(ExitCode::SUCCESS)
}

pub async fn status(ctx: &Ctx, a: StatusArgs) -> anyhow::Result<ExitCode> {
    let s = status_of(ctx).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    let backend = serde_json::to_value(s.backend)?;
    println!(
        "composer-keyd {} (protocol {}), pid {}, up {}",
        s.version,
        s.protocol,
        s.pid,
        humantime::format_duration(std::time::Duration::from_secs(s.uptime_secs))
    );
    println!("socket:      {}", ctx.client.path().display());
    println!(
        "backend:     {} ({})",
        backend.as_str().unwrap_or("unknown"),
        s.backend_reason
    );
    println!(
        "state:       {}",
        if s.locked {
            "LOCKED (run `composer-keyd unlock`)"
        } else {
            "unlocked"
        }
    );
    println!("credentials: {} ({} enabled)", s.credentials, s.enabled);
    Ok(ExitCode::SUCCESS)
}
