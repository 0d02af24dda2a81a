//! `churn-alert generate-docs DIR`: the man pages and shell completions, generated from the
//! command-line definitions (clap_mangen, clap_complete) so that they cannot drift from the
//! commands. Hidden: packagers call it (`deploy/package.sh`); operators read the results.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::CommandFactory as _;
use clap_complete::Shell;

use crate::cli::{Cli, GenerateDocsArgs};

/// The completion files, by shell, under the names each shell looks for.
const COMPLETIONS: [(Shell, &str); 3] = [
    (Shell::Bash, "churn-alert.bash"),
    (Shell::Zsh, "_churn-alert"),
    (Shell::Fish, "churn-alert.fish"),
];

pub(crate) fn generate_docs(args: &GenerateDocsArgs) -> anyhow::Result<ExitCode> {
    let man = args.dir.join("man");
    let completions = args.dir.join("completions");
    for dir in [&man, &completions] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let command = Cli::command();
    clap_mangen::generate_to(command.clone(), &man)
        .with_context(|| format!("cannot write the man pages into {}", man.display()))?;
    for (shell, name) in COMPLETIONS {
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut command.clone(), "churn-alert", &mut text);
        write(&completions.join(name), &text)?;
    }
    crate::cmd::console::say!(
        "man pages in {}, completions in {}",
        man.display(),
        completions.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}
