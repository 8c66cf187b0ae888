//! The `vms-supervisor` command: parse the CLI, load the config, run.
//! Exit codes are decided here and nowhere else.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use vms_supervisor::config::{self, Config, ConfigError};
use vms_supervisor::mediamtx;

/// sysexits EX_CONFIG: the unit's `RestartPreventExitStatus=78` keeps systemd
/// from restarting in a loop on a bad config.
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(Failure::Config(path, e)) => {
            eprintln!(
                "vms-supervisor: invalid configuration {}: {e}",
                path.display()
            );
            ExitCode::from(EXIT_CONFIG)
        }
        Err(Failure::Other(e)) => {
            eprintln!("vms-supervisor: {e:#}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    Config(PathBuf, ConfigError),
    Other(anyhow::Error),
}

fn load(path: &Path) -> Result<Config, Failure> {
    Config::load(path).map_err(|e| Failure::Config(path.to_path_buf(), e))
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::CheckConfig { path } => {
            let path = path.unwrap_or(cli.config);
            let config = load(&path)?;
            println!(
                "{}: ok ({} camera{})",
                path.display(),
                config.cameras.len(),
                if config.cameras.len() == 1 { "" } else { "s" }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::RenderMediamtx => {
            let config = load(&cli.config)?;
            print!("{}", mediamtx::render::render(&config));
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { demo } => {
            let (path, config) = if demo {
                let path = PathBuf::from("<embedded demo config>");
                let config = Config::from_toml(config::DEMO_TOML)
                    .map_err(|e| Failure::Config(path.clone(), e))?;
                (path, config)
            } else {
                (cli.config.clone(), load(&cli.config)?)
            };
            let _ = path;
            let Some(_binary) = mediamtx::resolve_binary(&config.mediamtx.binary) else {
                return Err(Failure::Other(anyhow::anyhow!(
                    mediamtx::missing_binary_help(&config.mediamtx.binary)
                )));
            };
            std::fs::create_dir_all(&config.state.dir).map_err(|e| {
                Failure::Other(anyhow::anyhow!(
                    "creating {}: {e}",
                    config.state.dir.display()
                ))
            })?;
            let out = config.mediamtx_config_path();
            mediamtx::render::write_atomic(&out, mediamtx::render::render(&config).as_bytes())
                .map_err(|e| Failure::Other(anyhow::anyhow!("writing {}: {e}", out.display())))?;
            eprintln!(
                "wrote {}; the supervisor loop is not implemented yet",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Keeps 24/7 camera recording alive: supervises MediaMTX, watches
/// recordings, repairs streams and alerts when it cannot.
#[derive(Parser)]
#[command(name = "vms-supervisor", version = vms_supervisor::VERSION)]
struct Cli {
    /// Configuration file.
    #[arg(long, global = true, default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Run {
        /// Use the embedded demo configuration (three simulated cameras,
        /// the MediaMTX stand-in, everything under /tmp/vms-demo).
        #[arg(long)]
        demo: bool,
    },
    /// Validate a configuration file: exit 0 if good, 78 naming the bad key.
    CheckConfig {
        /// The file to check (default: --config).
        path: Option<PathBuf>,
    },
    /// Print the MediaMTX configuration generated from --config.
    RenderMediamtx,
}
