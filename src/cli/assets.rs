//! `tokend generate-assets DIR` (hidden): the man pages and shell
//! completions the Debian package ships, written from the same clap
//! definition the binary parses, so they never drift from `--help`.
//! `.ci/package` runs it before `cargo deb`.

use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

/// Writes `DIR/man/tokend.1` (one page per subcommand beside it, e.g.
/// `tokend-credentials-list.1`) and `DIR/completions/` for bash, zsh and fish.
pub(super) fn generate(dir: &Path) -> anyhow::Result<()> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    for d in [&man, &completions] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let cmd = public(Cli::command());
    clap_mangen::generate_to(cmd.clone(), &man)
        .with_context(|| format!("cannot write man pages into {}", man.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd.clone(), "tokend", &completions)
            .with_context(|| format!("cannot write {shell} completions"))?;
    }
    eprintln!(
        "wrote man pages to {} and completions to {}",
        man.display(),
        completions.display()
    );
    Ok(())
}

/// The command without its hidden subcommands (this one), which man pages
/// leave out already but completions would offer.
fn public(cmd: clap::Command) -> clap::Command {
    let visible: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .cloned()
        .collect();
    let mut out = clap::Command::new("tokend")
        .args(cmd.get_arguments().cloned())
        .subcommands(visible);
    if let Some(about) = cmd.get_about() {
        out = out.about(about.clone());
    }
    out.version(env!("CARGO_PKG_VERSION"))
}
