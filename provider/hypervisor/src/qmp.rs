//! A minimal QMP client: JSON objects over a unix socket. QEMU greets, the client
//! negotiates capabilities, then each command gets one `return` or `error` reply
//! (asynchronous `event` messages in between are skipped).

use std::io::{BufRead, BufReader, IoSlice, Write};
use std::os::fd::BorrowedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

#[derive(Debug)]
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Qmp, String> {
        let stream = UnixStream::connect(socket).map_err(|e| format!("cannot connect to {}: {e}", socket.display()))?;
        stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
        stream.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
        let writer = stream.try_clone().map_err(|e| e.to_string())?;
        let mut qmp = Qmp { reader: BufReader::new(stream), writer };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(format!("unexpected greeting {greeting}"));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    fn read_message(&mut self) -> Result<Value, String> {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("QEMU closed the connection".into());
        }
        serde_json::from_str(&line).map_err(|e| format!("bad QMP message ({e})"))
    }

    /// Runs a command and returns its `return` value.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, String> {
        let bytes = Self::message(command, arguments);
        self.writer.write_all(&bytes).map_err(|e| e.to_string())?;
        self.answer()
    }

    /// Hands QEMU a descriptor, by which later commands name it `fd:<name>` (`getfd`, the
    /// descriptor passed beside the command as SCM_RIGHTS): how a file is given to a
    /// sandboxed QEMU that may not open paths itself.
    pub fn pass_fd(&mut self, name: &str, fd: BorrowedFd<'_>) -> Result<(), String> {
        use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
        let bytes = Self::message("getfd", Some(json!({ "fdname": name })));
        let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        let fds = [fd];
        if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Err("the descriptor does not fit the control message".into());
        }
        let sent = rustix::net::sendmsg(&self.writer, &[IoSlice::new(&bytes)], &mut control, SendFlags::empty())
            .map_err(|e| e.to_string())?;
        // The descriptor went with the first byte; the rest of the line follows plainly.
        self.writer.write_all(&bytes[sent..]).map_err(|e| e.to_string())?;
        self.answer().map(|_| ())
    }

    fn message(command: &str, arguments: Option<Value>) -> Vec<u8> {
        let mut message = json!({ "execute": command });
        if let Some(args) = arguments {
            message["arguments"] = args;
        }
        let mut bytes = message.to_string().into_bytes();
        bytes.push(b'\n');
        bytes
    }

    /// The reply to the command just sent.
    fn answer(&mut self) -> Result<Value, String> {
        loop {
            let reply = self.read_message()?;
            if let Some(value) = reply.get("return") {
                return Ok(value.clone());
            }
            if let Some(error) = reply.get("error") {
                let desc = error.get("desc").and_then(Value::as_str).unwrap_or("unknown error");
                return Err(desc.to_owned());
            }
            // An event: keep reading.
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn negotiates_skips_events_and_reports_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut writer = stream.try_clone().unwrap();
            let mut reader = BufReader::new(stream);
            writer.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n").unwrap();
            let mut line = String::new();
            for reply in [
                "{\"return\": {}}\n",
                "{\"event\": \"RESUME\"}\n{\"return\": {\"status\": \"running\", \"running\": true}}\n",
                "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no such thing\"}}\n",
            ] {
                line.clear();
                reader.read_line(&mut line).unwrap();
                assert!(line.contains("execute"), "{line}");
                writer.write_all(reply.as_bytes()).unwrap();
            }
        });
        let mut qmp = Qmp::connect(&path, Duration::from_secs(5)).unwrap();
        assert_eq!(qmp.execute("query-status", None).unwrap()["status"], "running");
        assert_eq!(qmp.execute("nope", Some(json!({"a": 1}))).unwrap_err(), "no such thing");
        server.join().unwrap();
    }
}
