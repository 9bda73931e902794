//! A `threadline serve` process: started with flags and environment, its address read from its log, its log lines
//! there to wait on, and SIGTERM to stop it the way an orchestrator does (or SIGKILL, the way a crash does).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use tokio::sync::mpsc;

/// How long any wait on the process may take before the test fails.
const WAIT: Duration = Duration::from_secs(60);

/// A running server process.
pub struct ServerProcess {
    child: Child,
    pub base: String,
    lines: mpsc::UnboundedReceiver<String>,
}

impl ServerProcess {
    /// Starts `threadline serve --listen 127.0.0.1:0` with more `args` and `env` (`RUST_LOG` is `info` unless `env`
    /// sets it); returns once it listens. The binary is the one cargo built, or the one `THREADLINE_TEST_BIN` names
    /// (a copy, when several work trees share one target directory).
    pub async fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let binary = std::env::var("THREADLINE_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_threadline").into());
        let mut child = Command::new(binary)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            // A test's own variables win (`RUST_LOG=trace`, say).
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (sender, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                eprintln!("[threadline] {line}");
                let _ = sender.send(line);
            }
        });
        let mut process = Self { child, base: String::new(), lines };
        let line = process.wait_for_log("listening on ").await;
        let at = line.find("listening on ").unwrap() + "listening on ".len();
        // The address ends at a space, or at the closing quote of a JSON log line's message.
        process.base = line[at..].split(|c: char| c.is_whitespace() || c == '"').next().unwrap().to_string();
        process
    }

    /// Waits for the next log line and returns it.
    pub async fn next_log(&mut self) -> String {
        match tokio::time::timeout(WAIT, self.lines.recv()).await {
            Ok(Some(line)) => line,
            Ok(None) => panic!("the process exited"),
            Err(_) => panic!("no log line within {WAIT:?}"),
        }
    }

    /// Waits for the next log line containing `text` and returns it.
    pub async fn wait_for_log(&mut self, text: &str) -> String {
        loop {
            match tokio::time::timeout(WAIT, self.lines.recv()).await {
                Ok(Some(line)) if line.contains(text) => return line,
                Ok(Some(_)) => {}
                Ok(None) => panic!("the process exited without logging {text:?}"),
                Err(_) => panic!("no log line with {text:?} within {WAIT:?}"),
            }
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Sends SIGKILL: the process ends at once, with no chance to finish anything.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
    }

    /// Waits for the process to exit (its log to close) and returns its status and its last log lines.
    pub async fn wait_exit(&mut self) -> (ExitStatus, Vec<String>) {
        let mut rest = Vec::new();
        loop {
            match tokio::time::timeout(WAIT, self.lines.recv()).await {
                Ok(Some(line)) => rest.push(line),
                Ok(None) => break,
                Err(_) => panic!("the process did not exit; its last lines: {rest:?}"),
            }
        }
        // Its log has closed: the process has ended, so this wait returns at once.
        (self.child.wait().unwrap(), rest)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
