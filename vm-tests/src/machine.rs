//! A test machine's lifecycle: start, crash, power loss, reboot, shutdown.
//!
//! A [`Machine`] is created by [`Driver::machine`](crate::Driver::machine)
//! and starts nothing until [`Machine::start`]. Starting binds the console,
//! backdoor and QMP sockets in the machine's directory, creates the disk
//! overlay and UEFI variable copy on first start (they persist across
//! restarts of the same machine, like a real disk), spawns QEMU and accepts
//! its three connections. The running process and its connections form a
//! [`Running`]; commands (see `commands.rs`) go through its backdoor.
//!
//! All methods take `&self`, so machines can be driven from several threads
//! (e.g. two machines booting at once). Dropping a machine kills its QEMU.

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::json;

use crate::accel::Accel;
use crate::backdoor::Backdoor;
use crate::config::StoreTransport;
use crate::config::{Boot, MachineConfig};
use crate::console::Console;
use crate::error::{Error, Failure};
use crate::qemu::{
    Process, RunPaths, command_line, create_overlay, display_argv, virtiofsd, virtiofsd_args,
};
use crate::qmp::Qmp;
use crate::retry::{Poll, retry};
use crate::shared::Shared;

/// How long QEMU may take to connect to the driver's sockets (unscaled).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the guest gets to act on a poweroff/reboot request (unscaled).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A started QEMU process and its connections.
pub(crate) struct Running {
    pub(crate) qemu: Mutex<Process>,
    pub(crate) backdoor: Backdoor,
    pub(crate) qmp: Mutex<Qmp>,
    pub(crate) console_input: Mutex<UnixStream>,
    /// The virtiofsd serving the store, killed after QEMU.
    _virtiofsd: Option<Process>,
}

impl Running {
    pub(crate) fn qemu(&self) -> MutexGuard<'_, Process> {
        self.qemu.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A virtual machine of a test.
pub struct Machine {
    pub(crate) shared: Arc<Shared>,
    pub(crate) config: MachineConfig,
    index: u8,
    dir: PathBuf,
    pub(crate) console: Arc<Console>,
    running: Mutex<Option<Arc<Running>>>,
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine")
            .field("name", &self.config.name)
            .field("index", &self.index)
            .finish()
    }
}

impl Machine {
    pub(crate) fn new(
        shared: Arc<Shared>,
        config: MachineConfig,
        index: u8,
    ) -> Result<Self, Error> {
        let dir = shared.dir.path().join(config.name.as_str());
        std::fs::create_dir(&dir)
            .map_err(|e| Error::io(format!("creating machine directory {}", dir.display()), e))?;
        let console = Console::new(
            config.name.as_str(),
            shared.log.clone(),
            shared.echo_console,
        );
        shared.add_console(Arc::clone(&console));
        Ok(Self {
            shared,
            config,
            index,
            dir,
            console,
            running: Mutex::new(None),
        })
    }

    /// The machine's name.
    pub fn name(&self) -> &str {
        self.config.name.as_str()
    }

    /// The machine's index in the test (1-based; used for MACs and addresses).
    pub fn index(&self) -> u8 {
        self.index
    }

    /// The machine's configuration.
    pub fn config(&self) -> &MachineConfig {
        &self.config
    }

    /// The machine's private directory (sockets, overlay, variables).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The accelerator of this machine: the test's, unless the machine's
    /// architecture is emulated on this host (an arm64 guest on an amd64
    /// host), which is always TCG.
    pub fn accel(&self) -> Accel {
        self.shared.accel.for_architecture(self.config.arch)
    }

    /// Scales a test timeout by the accelerator factor.
    pub(crate) fn scaled(&self, timeout: Duration) -> Duration {
        self.accel().scale(timeout)
    }

    /// Runs `f` as a step of this machine.
    pub(crate) fn step<T>(
        &self,
        text: impl Into<String>,
        f: impl FnOnce() -> Result<T, Error>,
    ) -> Result<T, Failure> {
        self.shared
            .step(format!("{}: {}", self.name(), text.into()), f)
    }

    /// A nested step of this machine (its error stays an [`Error`]).
    pub(crate) fn substep<T>(
        &self,
        text: impl Into<String>,
        f: impl FnOnce() -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.shared
            .log
            .step(format!("{}: {}", self.name(), text.into()), f)
    }

    fn lock_running(&self) -> MutexGuard<'_, Option<Arc<Running>>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The running QEMU, or an error naming the machine.
    pub(crate) fn running(&self) -> Result<Arc<Running>, Error> {
        self.lock_running()
            .clone()
            .ok_or_else(|| Error::NotRunning(self.name().to_owned()))
    }

    /// Whether QEMU is running.
    pub fn is_running(&self) -> bool {
        self.lock_running()
            .as_ref()
            .is_some_and(|running| running.qemu().exit_status().is_none())
    }

    /// The error for "QEMU is gone", with its status and stderr.
    pub(crate) fn exited_error(&self, running: &Running, during: &str) -> Error {
        let mut qemu = running.qemu();
        // The socket may close a moment before the process is reaped.
        let status = qemu
            .wait_exit(Duration::from_secs(2), "QEMU to exit")
            .map_or_else(|_| "still running".to_owned(), |s| s.to_string());
        let stderr = qemu.stderr();
        Error::QemuExited {
            machine: self.name().to_owned(),
            status,
            during: during.to_owned(),
            stderr: if stderr.trim().is_empty() {
                String::new()
            } else {
                format!(
                    "\n  QEMU stderr:\n    {}",
                    stderr.trim().replace('\n', "\n    ")
                )
            },
        }
    }

    /// Starts QEMU. Returns once QEMU runs and is connected; it does not wait
    /// for the guest (use `wait_for_console_text` or any command for that).
    pub fn start(&self) -> Result<(), Failure> {
        self.step("start", || self.start_inner())
    }

    fn start_inner(&self) -> Result<(), Error> {
        if self.is_running() {
            return Err(Error::AlreadyRunning(self.name().to_owned()));
        }
        let paths = RunPaths::in_dir(&self.dir, &self.config);
        if let (Some(disk), Some(overlay)) = (&self.config.disk, &paths.overlay)
            && !overlay.exists()
        {
            self.substep("create disk overlay", || {
                create_overlay(&disk.path, disk.format.as_str(), overlay, disk.size)
            })?;
        }
        if let (Boot::Uefi { vars, .. }, Some(copy)) = (&self.config.boot, &paths.vars)
            && !copy.exists()
        {
            std::fs::copy(vars, copy).map_err(|e| {
                Error::io(
                    format!(
                        "copying UEFI variables {} to {}",
                        vars.display(),
                        copy.display()
                    ),
                    e,
                )
            })?;
        }
        let console = listen(&paths.console)?;
        let backdoor = listen(&paths.backdoor)?;
        let qmp = listen(&paths.qmp)?;
        let networks = self
            .config
            .networks
            .iter()
            .map(|net| net.attach(self.index))
            .collect::<Result<Vec<_>, _>>()?;
        let virtiofsd = match (&self.config.store, self.config.store_transport) {
            (Some(store), StoreTransport::VirtioFs) => {
                Some(self.substep("spawn virtiofsd", || {
                    start_virtiofsd(store, &paths.virtiofs, self.scaled(CONNECT_TIMEOUT))
                })?)
            }
            _ => None,
        };
        let accel = self.accel();
        let args = command_line(&self.config, &paths, &accel, &networks);
        let binary = crate::qemu::program(self.config.arch);
        let qemu = self.substep("spawn QEMU", || {
            let mut qemu = Process::spawn(&binary, &args)?;
            let program = display_argv(&binary, &args);
            eprintln!("{}: {program}", self.name());
            let timeout = self.scaled(CONNECT_TIMEOUT);
            let mut accept = |listener: &UnixListener, what: &str| {
                accept_from(listener, &mut qemu, &binary, timeout, what)
            };
            let streams = (
                accept(&console, "console")?,
                accept(&backdoor, "backdoor")?,
                accept(&qmp, "QMP monitor")?,
            );
            Ok((qemu, streams))
        });
        for path in [&paths.console, &paths.backdoor, &paths.qmp] {
            let _ = std::fs::remove_file(path);
        }
        let (qemu, (console_stream, backdoor_stream, qmp_stream)) = qemu?;
        self.console.mark_boot();
        let input = console_stream
            .try_clone()
            .map_err(|e| Error::io("cloning the console socket", e))?;
        self.console
            .spawn_reader(console_stream)
            .map_err(|e| Error::io("starting the console reader", e))?;
        let running = Running {
            qemu: Mutex::new(qemu),
            backdoor: Backdoor::new(backdoor_stream, self.name())?,
            qmp: Mutex::new(Qmp::new(qmp_stream)?),
            console_input: Mutex::new(input),
            _virtiofsd: virtiofsd,
        };
        *self.lock_running() = Some(Arc::new(running));
        Ok(())
    }

    /// Sends bytes to the serial console as if typed (e.g. `"root\n"` or an
    /// escape sequence for a boot menu on the serial console).
    pub fn send_keys(&self, text: &str) -> Result<(), Failure> {
        self.step(format!("send keys {text:?}"), || {
            self.write_console(text.as_bytes())
        })
    }

    /// Writes bytes to the serial console.
    pub(crate) fn write_console(&self, bytes: &[u8]) -> Result<(), Error> {
        let running = self.running()?;
        let mut input = running
            .console_input
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        input
            .write_all(bytes)
            .map_err(|e| Error::io("writing to the serial console", e))
    }

    /// Presses a key combination on the graphical console through the QEMU
    /// monitor, in QEMU's `sendkey` notation: `"ctrl-alt-delete"`, `"ret"`.
    pub fn send_monitor_keys(&self, combo: &str) -> Result<(), Failure> {
        self.step(format!("send monitor keys {combo}"), || {
            let keys: Vec<_> = combo
                .split('-')
                .map(|key| json!({ "type": "qcode", "data": key }))
                .collect();
            self.monitor("send-key", Some(json!({ "keys": keys })))
                .map(drop)
        })
    }

    /// Runs a QMP command on the running QEMU.
    pub(crate) fn monitor(
        &self,
        command: &str,
        arguments: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, Error> {
        let running = self.running()?;
        let mut qmp = running.qmp.lock().unwrap_or_else(|e| e.into_inner());
        qmp.execute(command, arguments)
    }

    /// Resets the machine at once, like the reset button: no sync, no
    /// shutdown; unwritten guest data is lost. The guest boots again; the
    /// backdoor becomes usable when it announces itself.
    pub fn crash(&self) -> Result<(), Failure> {
        self.step("crash (system_reset)", || {
            let running = self.running()?;
            self.monitor("system_reset", None)?;
            running.backdoor.reset();
            self.console.mark_boot();
            Ok(())
        })
    }

    /// Declares that the guest is rebooting by itself (a kernel panic with
    /// `panic=N`, a watchdog): what follows on the console is a new boot, so
    /// earlier panics no longer fail waits, and the next command waits for
    /// the new boot's backdoor.
    pub fn expect_reboot(&self) -> Result<(), Failure> {
        self.step("expect the guest to reboot by itself", || {
            let running = self.running()?;
            running.backdoor.reset();
            self.console.mark_boot();
            Ok(())
        })
    }

    /// Simulates power loss: kills QEMU with SIGKILL and starts it again on
    /// the same disk overlay.
    pub fn power_loss(&self) -> Result<(), Failure> {
        self.step("power loss (kill -9 and restart)", || {
            self.kill_inner();
            self.substep("start", || self.start_inner())
        })
    }

    /// Kills QEMU with SIGKILL (the machine can be started again).
    pub fn kill(&self) {
        let step = self.shared.log.begin(format!("{}: kill", self.name()));
        self.kill_inner();
        step.ok();
    }

    fn kill_inner(&self) {
        if let Some(running) = self.lock_running().take() {
            running.qemu().kill();
        }
    }

    /// Asks the guest to reboot (`reboot_command` of the config) and returns
    /// at once; the next command waits for the rebooted guest's backdoor.
    pub fn reboot(&self) -> Result<(), Failure> {
        let command = self.config.reboot_command.clone();
        self.step(format!("reboot ({command})"), || {
            let running = self.running()?;
            self.request_power_change(&running, &command)?;
            running.backdoor.reset();
            self.console.mark_boot();
            Ok(())
        })
    }

    /// Powers the guest off cleanly (`poweroff_command` of the config) and
    /// waits up to `timeout` for QEMU to exit.
    pub fn shutdown(&self, timeout: Duration) -> Result<(), Failure> {
        let timeout = self.scaled(timeout);
        let command = self.config.poweroff_command.clone();
        self.step(format!("shutdown ({command})"), || {
            let running = self.running()?;
            self.request_power_change(&running, &command)?;
            let status = self.substep("wait for QEMU to exit", || {
                running
                    .qemu()
                    .wait_exit(timeout, "QEMU to exit after poweroff")
            })?;
            self.lock_running().take();
            if status.success() {
                Ok(())
            } else {
                Err(self.exited_error(&running, "powering off"))
            }
        })
    }

    /// Waits up to `timeout` for QEMU to exit because the guest powered off
    /// by itself, or rebooted with `-no-reboot` among the extra arguments
    /// (a `reboot` requested from outside the driver, over ssh say). The
    /// machine can be started again on the same disk. A nonzero exit of
    /// QEMU is an error.
    pub fn wait_for_shutdown(&self, timeout: Duration) -> Result<(), Failure> {
        let timeout = self.scaled(timeout);
        self.step("wait for the guest to shut down", || {
            let running = self.running()?;
            let status = running
                .qemu()
                .wait_exit(timeout, "QEMU to exit after the guest shut down")?;
            self.lock_running().take();
            if status.success() {
                Ok(())
            } else {
                Err(self.exited_error(&running, "shutting down"))
            }
        })
    }

    /// Runs a poweroff or reboot command in the background of the guest, so
    /// the backdoor can answer before the guest goes down. A backdoor that
    /// closes or restarts instead counts as success.
    fn request_power_change(&self, running: &Running, command: &str) -> Result<(), Error> {
        let script = format!("(sleep 0.2; {command}) </dev/null >/dev/null 2>&1 &");
        let display = format!("`{command}`");
        self.substep(format!("request {display}"), || {
            match running.backdoor.run(
                &script,
                b"",
                self.scaled(REQUEST_TIMEOUT),
                &display,
                &mut || None,
            ) {
                Ok(reply) if reply.status == 0 => Ok(()),
                Ok(reply) => Err(Error::CommandFailed {
                    command: display.clone(),
                    status: reply.status,
                    stdout: reply.stdout,
                    stderr: reply.stderr,
                }),
                Err(crate::backdoor::RunError::Closed)
                | Err(crate::backdoor::RunError::Error(Error::BackdoorRestarted { .. })) => Ok(()),
                Err(crate::backdoor::RunError::Error(e)) => Err(e),
            }
        })
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.kill_inner();
    }
}

/// Starts virtiofsd serving `store` on `socket` and waits for the socket.
fn start_virtiofsd(store: &Path, socket: &Path, timeout: Duration) -> Result<Process, Error> {
    if socket.exists() {
        std::fs::remove_file(socket)
            .map_err(|e| Error::io(format!("removing stale socket {}", socket.display()), e))?;
    }
    let program = virtiofsd();
    let mut daemon = Process::spawn(&program, &virtiofsd_args(store, socket))?;
    retry(
        &format!("{program} to create {}", socket.display()),
        timeout,
        Duration::from_millis(50),
        |_| {
            if socket.exists() {
                return Ok(Poll::Ready(()));
            }
            match daemon.exit_status() {
                Some(status) => Err(Error::Program {
                    program: program.clone(),
                    detail: format!("exited at startup ({status}): {}", daemon.stderr().trim()),
                }),
                None => Ok(Poll::Pending(None)),
            }
        },
    )?;
    Ok(daemon)
}

/// Binds a listening socket, replacing a stale socket file.
fn listen(path: &Path) -> Result<UnixListener, Error> {
    if path.exists() {
        std::fs::remove_file(path)
            .map_err(|e| Error::io(format!("removing stale socket {}", path.display()), e))?;
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| Error::io(format!("listening on {}", path.display()), e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io(format!("configuring {}", path.display()), e))?;
    Ok(listener)
}

/// Accepts QEMU's connection on `listener`, failing early if QEMU exits.
fn accept_from(
    listener: &UnixListener,
    qemu: &mut Process,
    program: &str,
    timeout: Duration,
    what: &str,
) -> Result<UnixStream, Error> {
    let stream = retry(
        &format!("QEMU to connect to the {what} socket"),
        timeout,
        Duration::from_millis(50),
        |_| match listener.accept() {
            Ok((stream, _)) => Ok(Poll::Ready(stream)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => match qemu.exit_status() {
                Some(status) => {
                    // Give the stderr reader a moment to collect the reason.
                    std::thread::sleep(Duration::from_millis(50));
                    Err(Error::Program {
                        program: program.to_owned(),
                        detail: format!("exited at startup ({status}): {}", qemu.stderr().trim()),
                    })
                }
                None => Ok(Poll::Pending(None)),
            },
            Err(e) => Err(Error::io(format!("accepting the {what} connection"), e)),
        },
    )?;
    stream
        .set_nonblocking(false)
        .map_err(|e| Error::io(format!("configuring the {what} connection"), e))?;
    Ok(stream)
}
