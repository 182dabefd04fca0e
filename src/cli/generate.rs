//! `rmq generate completions|man`: shell completions and man pages from the same clap
//! definition the binary parses with, so they cannot drift from it. The repository keeps
//! the output under `completions/` and `man/`; a test regenerates them and compares.

use super::Cli;
use crate::exit::{self, coded};
use crate::output::Output;
use clap::{Args, CommandFactory, Subcommand, ValueEnum};
use clap_complete::{Generator, Shell};
use std::path::{Path, PathBuf};

/// What to generate.
#[derive(Debug, Subcommand)]
pub(crate) enum GenerateCommand {
    /// Shell completions: one shell's script on stdout, or every shell's file with --dir.
    #[command(
        after_help = "Examples:\n  rmq generate completions bash > ~/.local/share/bash-completion/completions/rmq\n  rmq generate completions zsh > ~/.zfunc/_rmq       # with fpath+=(~/.zfunc) in ~/.zshrc\n  rmq generate completions fish > ~/.config/fish/completions/rmq.fish\n  rmq generate completions --dir completions         # all six, as committed in the repository"
    )]
    Completions(CompletionsArgs),
    /// Man pages: rmq.1 on stdout, or rmq.1 and one page per subcommand with --dir.
    #[command(
        after_help = "Examples:\n  rmq generate man | man -l -                        # read rmq(1) now\n  rmq generate man --dir ~/.local/share/man/man1     # then: man rmq-send\n  rmq generate man --dir man                         # as committed in the repository"
    )]
    Man(ManArgs),
}

/// `rmq generate completions`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell (required unless --dir is given: then every shell by default).
    #[arg(value_enum, required_unless_present = "dir")]
    shell: Option<ShellArg>,
    /// Write the file(s) into this directory instead of stdout.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// `rmq generate man`.
#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// Write rmq.1 and a page per subcommand (rmq-send.1, ...) into this directory,
    /// replacing any rmq*.1 there, instead of printing rmq.1.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// The shells completions exist for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ShellArg {
    /// bash (file: rmq.bash).
    Bash,
    /// zsh (file: _rmq).
    Zsh,
    /// fish (file: rmq.fish).
    Fish,
    /// elvish (file: rmq.elv).
    Elvish,
    /// PowerShell (file: _rmq.ps1).
    Powershell,
    /// Nushell (file: rmq.nu).
    Nushell,
}

const ALL_SHELLS: [ShellArg; 6] = [
    ShellArg::Bash,
    ShellArg::Zsh,
    ShellArg::Fish,
    ShellArg::Elvish,
    ShellArg::Powershell,
    ShellArg::Nushell,
];

pub(crate) fn run(cmd: GenerateCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        GenerateCommand::Completions(a) => {
            let shells = match a.shell {
                Some(s) => vec![s],
                None => ALL_SHELLS.to_vec(),
            };
            for shell in shells {
                let (name, text) = completion(shell);
                match &a.dir {
                    Some(dir) => write(dir, &name, &text)?,
                    None => out.bytes(&text)?,
                }
            }
        }
        GenerateCommand::Man(a) => match &a.dir {
            Some(dir) => {
                create(dir)?;
                remove_old_pages(dir)?;
                clap_mangen::generate_to(Cli::command(), dir).map_err(|e| {
                    coded(
                        exit::FAILURE,
                        format!("cannot write man pages in '{}': {e}", dir.display()),
                    )
                })?;
            }
            None => {
                let mut buf = Vec::new();
                clap_mangen::Man::new(Cli::command()).render(&mut buf)?;
                out.bytes(&buf)?;
            }
        },
    }
    Ok(())
}

/// The completion script for one shell, and its conventional file name.
fn completion(shell: ShellArg) -> (String, Vec<u8>) {
    fn gen_with(g: impl Generator) -> (String, Vec<u8>) {
        let mut cmd = Cli::command();
        let mut buf = Vec::new();
        let name = g.file_name("rmq");
        clap_complete::generate(g, &mut cmd, "rmq", &mut buf);
        (name, buf)
    }
    match shell {
        ShellArg::Bash => gen_with(Shell::Bash),
        ShellArg::Zsh => gen_with(Shell::Zsh),
        ShellArg::Fish => gen_with(Shell::Fish),
        ShellArg::Elvish => gen_with(Shell::Elvish),
        ShellArg::Powershell => gen_with(Shell::PowerShell),
        ShellArg::Nushell => gen_with(clap_complete_nushell::Nushell),
    }
}

fn create(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| {
        coded(
            exit::FAILURE,
            format!("cannot create '{}': {e}", dir.display()),
        )
    })
}

fn write(dir: &Path, name: &str, text: &[u8]) -> anyhow::Result<()> {
    create(dir)?;
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|e| {
        coded(
            exit::FAILURE,
            format!("cannot write '{}': {e}", path.display()),
        )
    })
}

/// Pages of subcommands that no longer exist must not linger.
fn remove_old_pages(dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if (name == "rmq.1" || name.starts_with("rmq-")) && name.ends_with(".1") {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}
