//! Every process a run started, by name: the one place a child is spawned, signalled and killed.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;

/// How to start one process.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The binary.
    pub program: PathBuf,
    /// The network namespace to run it in, as `ip netns` names it; `None`: this process's own.
    pub netns: Option<String>,
    /// Its arguments.
    pub args: Vec<String>,
    /// Variables set for it, after every inherited `TOYSTORE_*` variable was removed.
    pub env: Vec<(&'static str, String)>,
    /// The file its stdout and stderr are appended to; `None`: both are discarded.
    pub log: Option<PathBuf>,
}

impl Launch {
    /// `program` with `args`, nothing else set.
    pub fn new(program: PathBuf, args: Vec<String>) -> Launch {
        Launch {
            program,
            netns: None,
            args,
            env: Vec::new(),
            log: None,
        }
    }

    /// The command that starts it. In a namespace that is `ip netns exec NS PROGRAM ARGS...`: `ip`
    /// execs the program, so the child's pid is the service's own and a signal reaches the service.
    /// `inherited` are the names of this process's environment variables: every one that starts
    /// with `TOYSTORE_` is removed, since the services read each flag from such a variable too (an
    /// exported `TOYSTORE_QUORUM=1` would silently change the store under test).
    fn command(&self, inherited: impl IntoIterator<Item = OsString>) -> Command {
        let mut command = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.program);
                c
            }
            None => Command::new(&self.program),
        };
        for key in inherited {
            if key.to_string_lossy().starts_with("TOYSTORE_") {
                command.env_remove(key);
            }
        }
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command.stdin(Stdio::null());
        command
    }
}

/// Every process a run started, by name, so that all of them can be killed from anywhere: when
/// the [`Store`](super::Store) is dropped, when the last owner of the registry is dropped (also on a
/// panic), and from the Ctrl-C / SIGTERM handler.
#[derive(Default)]
pub struct Procs {
    children: Mutex<BTreeMap<String, Child>>,
    dirs: Mutex<Vec<PathBuf>>,
}

impl Procs {
    /// An empty registry, shared.
    pub fn new() -> Arc<Procs> {
        Arc::new(Procs::default())
    }

    /// Starts `launch` as process `name` and records it. Fails, saying why, when `name` already
    /// runs, the binary is missing, the log cannot be opened, or the process cannot be started.
    pub fn spawn(&self, name: &str, launch: &Launch) -> Result<(), String> {
        if self.pid(name).is_some() {
            return Err(format!("{name} already runs"));
        }
        if !launch.program.exists() {
            return Err(format!(
                "{} is missing: run `make build` first (or set TOYSTORE_BIN)",
                launch.program.display()
            ));
        }
        let mut command = launch.command(std::env::vars_os().map(|(k, _)| k));
        match &launch.log {
            Some(path) => {
                let log = File::options()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let copy = log
                    .try_clone()
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                command.stdout(copy).stderr(log);
            }
            None => {
                command.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", launch.program.display()))?;
        if let Some(mut old) = self.children.lock().insert(name.to_string(), child) {
            kill_child(&mut old);
        }
        Ok(())
    }

    /// Records a folder to delete when the run is interrupted.
    pub fn remember_dir(&self, dir: &Path) {
        self.dirs.lock().push(dir.to_path_buf());
    }

    /// The pid of `name`, while it runs.
    pub fn pid(&self, name: &str) -> Option<u32> {
        let mut children = self.children.lock();
        let child = children.get_mut(name)?;
        match child.try_wait() {
            Ok(None) => Some(child.id()),
            _ => None,
        }
    }

    /// True when `name` was started and has exited by itself (it was not killed here).
    pub fn exited(&self, name: &str) -> bool {
        let mut children = self.children.lock();
        children
            .get_mut(name)
            .is_some_and(|c| !matches!(c.try_wait(), Ok(None)))
    }

    /// Forgets `name` if it has exited by itself (reaping it), so it can be started again. Returns
    /// how it exited; `None` when it still runs or was not started.
    pub fn forget_exited(&self, name: &str) -> Option<ExitStatus> {
        let mut children = self.children.lock();
        let status = children.get_mut(name)?.try_wait().ok().flatten()?;
        children.remove(name);
        Some(status)
    }

    /// Sends `signal` to `name` (SIGSTOP, SIGCONT, ...).
    pub fn signal(&self, name: &str, signal: i32) -> Result<(), String> {
        let children = self.children.lock();
        let child = children
            .get(name)
            .ok_or_else(|| format!("{name} is not running"))?;
        // SAFETY: kill(2) on the pid of a child this process started and has not reaped.
        let rc = unsafe { libc::kill(child.id() as i32, signal) };
        if rc == 0 {
            Ok(())
        } else {
            Err(format!(
                "signal {signal} to {name}: {}",
                std::io::Error::last_os_error()
            ))
        }
    }

    /// SIGTERMs `name` and waits for it to exit; how it exited.
    pub fn terminate(&self, name: &str) -> Result<ExitStatus, String> {
        self.signal(name, libc::SIGTERM)?;
        let child = self.children.lock().remove(name);
        let mut child = child.ok_or_else(|| format!("{name} is not running"))?;
        child.wait().map_err(|e| format!("wait for {name}: {e}"))
    }

    /// SIGKILLs `name` and reaps it. False when it was not running.
    pub fn kill(&self, name: &str) -> bool {
        let child = self.children.lock().remove(name);
        match child {
            Some(mut c) => {
                kill_child(&mut c);
                true
            }
            None => false,
        }
    }

    /// SIGKILLs and reaps every process.
    pub fn kill_all(&self) {
        let children = std::mem::take(&mut *self.children.lock());
        for (_, mut c) in children {
            kill_child(&mut c);
        }
    }

    /// Installs a Ctrl-C / SIGTERM handler that kills every process, deletes the remembered
    /// folders and exits with 130. Call once, from a binary's `main`.
    pub fn install_interrupt_handler(self: &Arc<Self>) {
        let procs = self.clone();
        let result = ctrlc::set_handler(move || {
            eprintln!("\ninterrupted: stopping every process this run started");
            procs.kill_all();
            for d in procs.dirs.lock().iter() {
                let _ = std::fs::remove_dir_all(d);
            }
            std::process::exit(130);
        });
        if let Err(e) = result {
            eprintln!(
                "warning: no Ctrl-C handler ({e}); the store is still stopped on a normal exit"
            );
        }
    }
}

impl Drop for Procs {
    /// The last owner gone (also when a run fails half-way): nothing it started may outlive it.
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// SIGCONT (a stopped child would not die promptly), SIGKILL, reap.
fn kill_child(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        // SAFETY: kill(2) on the pid of a child this process started and has not reaped yet.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGCONT);
        }
        let _ = child.kill();
    }
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inherited_toystore_variables_are_removed_and_the_launcher_s_are_set() {
        let mut launch = Launch::new("/bin/true".into(), vec!["--x".into()]);
        launch.env.push(("TOYSTORE_SECRET", "s".into()));
        let command =
            launch.command(["TOYSTORE_QUORUM", "PATH", "TOYSTORE_SECRET"].map(OsString::from));
        let envs: Vec<_> = command.get_envs().collect();
        assert!(
            envs.contains(&("TOYSTORE_QUORUM".as_ref(), None)),
            "{envs:?}"
        );
        assert!(
            envs.contains(&("TOYSTORE_SECRET".as_ref(), Some("s".as_ref()))),
            "{envs:?}"
        );
        assert!(!envs.iter().any(|(k, _)| *k == "PATH"), "{envs:?}");
        assert_eq!(command.get_program(), "/bin/true");
    }

    #[test]
    fn a_namespace_runs_the_binary_through_ip_netns_exec() {
        let mut launch = Launch::new("/x/order".into(), vec!["--id".into(), "1".into()]);
        launch.netns = Some("tsx-order1".into());
        let command = launch.command(std::iter::empty());
        let args: Vec<_> = command.get_args().collect();
        assert_eq!(command.get_program(), "ip");
        assert_eq!(
            args,
            ["netns", "exec", "tsx-order1", "/x/order", "--id", "1"]
        );
    }

    #[test]
    fn a_child_is_killed_when_the_registry_is_dropped() {
        let procs = Procs::new();
        procs
            .spawn(
                "sleep",
                &Launch::new("/bin/sleep".into(), vec!["60".into()]),
            )
            .unwrap();
        let pid = procs.pid("sleep").expect("runs");
        assert!(procs
            .spawn("sleep", &Launch::new("/bin/sleep".into(), vec![]))
            .is_err());
        drop(procs);
        // SAFETY: signal 0 only asks whether the pid exists; it was reaped, so it does not.
        assert_ne!(unsafe { libc::kill(pid as i32, 0) }, 0);
        let missing = Procs::new().spawn("x", &Launch::new("/no/such/binary".into(), vec![]));
        assert!(missing.unwrap_err().contains("is missing"));
    }
}
