//! `skiplock enqueue`: one job from flags, or many from JSON lines on stdin.

use std::ffi::OsString;
use std::io::IsTerminal as _;
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow, bail};
use serde::Serialize;
use serde_json::{Map, Value};
use skiplock::{EnqueueOptions, NewJob};
use tokio::io::AsyncReadExt as _;

use super::Ctx;
use crate::input::{self, utf8, utf8_opt};
use crate::output;

/// Jobs per `enqueue_many` call (and transaction) when reading stdin.
const BATCH_DEFAULT: u32 = 5_000;

/// The fields a job object on stdin may have.
const JOB_FIELDS: &str = "kind, args, queue, priority, run_at, delay, delay_ms, max_attempts, unique_key, tags, meta";

const EXAMPLES: &str = r#"Examples:
  skiplock enqueue --kind email --args '{"to":"ada@example.com"}'
  skiplock enqueue --kind report --queue reports --priority 5 --delay 10m --tag nightly
  skiplock enqueue --kind welcome --args '{"user":42}' --unique-key welcome:42

  # Many jobs, one JSON object per line:
  printf '%s\n' '{"kind":"email","args":{"to":"a@b.c"}}' \
                '{"kind":"resize","args":{"id":7},"queue":"media","delay":"30s"}' | skiplock enqueue

  # Or one args document per line, all of one kind:
  jq -c '.[]' users.json | skiplock enqueue --kind welcome --queue mail

Stdin:
  Each line is a job object with the fields kind (required), args (default {}), queue,
  priority, run_at (RFC 3339), delay ("30s") or delay_ms (1500), max_attempts, unique_key,
  tags (["a","b"]) and meta ({...}); or, with --kind, the args of a job of that kind (any
  JSON). With --kind, an object that has a string "kind" field is still read as a job object.
  Blank lines are skipped. Flags other than --kind set defaults that a job object's fields
  override. Every line is checked before anything is inserted; jobs then go in in batches
  (--batch), each batch in one transaction.

When stdin is read:
  - With --stdin: always, to its end (from a terminal, end with ctrl-d); no lines, no jobs.
  - Without --stdin, when stdin is a pipe or a file (not a terminal, not /dev/null) and
    neither --args nor --unique-key is given. With --kind it must then hold at least one
    line: an empty stdin is refused (pass --args '{}' for one job with empty args, or
    --stdin to accept no lines). Without --kind, no lines, no jobs.
  - Otherwise one job is enqueued from the flags and stdin is not read. With --args or
    --unique-key, data already waiting on stdin is refused rather than left unread (redirect
    stdin from /dev/null to enqueue the one job)."#;

/// Enqueues one job described by flags, or many read from stdin as JSON
/// lines (with --stdin, or when stdin is a pipe or a file and neither --args
/// nor --unique-key is given).
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The job's kind, e.g. `email` (letters, digits and _ . : / -). With stdin: the kind of
    /// every line that is bare args
    #[arg(long, value_name = "KIND")]
    kind: Option<OsString>,
    /// The job's arguments, a JSON document [default: {}]. One job: stdin is not read
    #[arg(long, value_name = "JSON", allow_hyphen_values = true)]
    args: Option<OsString>,
    /// The queue [default: default]
    #[arg(long, value_name = "QUEUE")]
    queue: Option<OsString>,
    /// Priority, 0 (runs first) to 9 (runs last) [default: 0]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    priority: Option<i16>,
    /// Run no earlier than this time (RFC 3339, e.g. 2030-01-02T03:04:05Z)
    #[arg(long, value_name = "TIME", conflicts_with = "delay")]
    run_at: Option<OsString>,
    /// Run no earlier than this long from now: 1500ms, 30s, 5m, 2h, 1d, 1h30m
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    delay: Option<OsString>,
    /// Attempts before the job is discarded, 1 to 10000 [default: 20]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    max_attempts: Option<i32>,
    /// At most one unfinished job holds a key: enqueueing another inserts nothing
    #[arg(long, value_name = "KEY")]
    unique_key: Option<OsString>,
    /// A label, for filtering (repeat for more)
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<OsString>,
    /// Metadata kept with the job, a JSON object
    #[arg(long, value_name = "JSON", allow_hyphen_values = true)]
    meta: Option<OsString>,
    /// Read jobs from stdin, one JSON document per line, even from a terminal or when empty
    #[arg(long)]
    stdin: bool,
    /// Jobs per transaction when reading stdin
    #[arg(long, value_name = "N", default_value_t = BATCH_DEFAULT,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch: u32,
}

#[derive(Serialize)]
struct Many {
    inserted: u64,
    duplicates: u64,
}

/// Where the jobs come from.
#[derive(Debug, PartialEq)]
enum Input {
    /// One job, from the flags.
    Flags,
    /// A job per line of stdin; with `must_have_lines`, an empty stdin is an
    /// error rather than no jobs.
    Lines { must_have_lines: bool },
}

/// What stdin is, as far as choosing an [`Input`] goes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stdin {
    Terminal,
    /// `/dev/null`: nothing was or can be piped.
    Null,
    /// A pipe, a file, a socket: whatever was given to read.
    Given,
}

impl Stdin {
    fn of_this_process() -> Stdin {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            Stdin::Terminal
        } else if is_dev_null(&stdin) {
            Stdin::Null
        } else {
            Stdin::Given
        }
    }
}

/// Whether `fd` is `/dev/null` (the same character device).
fn is_dev_null(fd: &impl std::os::fd::AsFd) -> bool {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    let Ok(fd) = fd.as_fd().try_clone_to_owned() else { return false };
    match (std::fs::File::from(fd).metadata(), std::fs::metadata("/dev/null")) {
        (Ok(ours), Ok(null)) => ours.file_type().is_char_device() && ours.rdev() == null.rdev(),
        _ => false,
    }
}

/// Whether bytes are waiting on stdin right now, without reading them
/// (`FIONREAD`: the bytes in a pipe or socket, a file's bytes past the
/// offset). Data that arrives later cannot be known of without reading.
fn stdin_has_data() -> bool {
    rustix::io::ioctl_fionread(std::io::stdin()).is_ok_and(|n| n > 0)
}

/// Chooses the input as the help's "When stdin is read" says. `has_data` is
/// only asked when a one-job flag meets a given stdin.
fn choose(args: &Args, stdin: Stdin, has_data: impl FnOnce() -> bool) -> Result<Input> {
    let one_job = match (&args.args, &args.unique_key) {
        (Some(_), _) => Some("--args"),
        (None, Some(_)) => Some("--unique-key"),
        (None, None) => None,
    };
    if args.stdin {
        return match one_job {
            Some("--args") => bail!("--args names one job's args; with stdin, each line holds a job's args"),
            Some(_) => bail!("--unique-key is for one job; with stdin, give each job object its own unique_key"),
            None => Ok(Input::Lines { must_have_lines: false }),
        };
    }
    match (one_job, stdin) {
        (Some(flag), Stdin::Given) if has_data() => {
            let what = if flag == "--args" { "gives one job's args" } else { "is for one job" };
            bail!(
                "{flag} {what}, but stdin has data waiting: drop {flag} to enqueue a job per line, or redirect \
                 stdin from /dev/null for the one job"
            )
        }
        (None, Stdin::Given) => Ok(Input::Lines { must_have_lines: args.kind.is_some() }),
        _ => Ok(Input::Flags),
    }
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<()> {
    let input = choose(&args, Stdin::of_this_process(), stdin_has_data)?;
    let kind = utf8_opt("--kind", args.kind.as_ref())?;
    let opts = flag_options(&args)?;
    if let Input::Lines { must_have_lines } = input {
        return many(ctx, kind, opts, args.batch as usize, must_have_lines).await;
    }
    let Some(kind) = kind else {
        bail!("missing --kind: name the job's kind, or pipe JSON lines on stdin (see `skiplock enqueue --help`)");
    };
    let args_text = utf8_opt("--args", args.args.as_ref())?.unwrap_or_else(|| "{}".to_owned());
    input::json("--args", &args_text)?;
    let job = NewJob::from_json(kind.clone(), &args_text, opts)?;
    let queue = job.options().queue.clone().unwrap_or_else(|| skiplock::QUEUE_DEFAULT.to_owned());
    let client = ctx.client()?;
    let done = client.enqueue_job(job).await?;
    if ctx.json() {
        output::json(&done)
    } else {
        if done.inserted {
            println!("enqueued job {} (kind {kind:?}, queue {queue:?})", done.id);
        } else {
            println!("job {} already holds this unique key; nothing was inserted", done.id);
        }
        Ok(())
    }
}

/// The options the flags set: the job's, or with stdin, every line's defaults.
fn flag_options(args: &Args) -> Result<EnqueueOptions> {
    let mut opts = EnqueueOptions::new();
    opts.queue = utf8_opt("--queue", args.queue.as_ref())?;
    opts.priority = args.priority;
    opts.max_attempts = args.max_attempts;
    if let Some(t) = utf8_opt("--run-at", args.run_at.as_ref())? {
        opts.run_at = Some(input::timestamp("--run-at", &t)?);
    }
    if let Some(d) = utf8_opt("--delay", args.delay.as_ref())? {
        opts.delay = Some(input::duration("--delay", &d)?);
    }
    opts.unique_key = utf8_opt("--unique-key", args.unique_key.as_ref())?;
    opts.tags = args.tags.iter().map(|t| utf8("--tag", t)).collect::<Result<_>>()?;
    if let Some(m) = utf8_opt("--meta", args.meta.as_ref())? {
        let meta = input::json("--meta", &m)?;
        if !meta.is_object() {
            bail!("invalid --meta: expected a JSON object such as '{{\"source\": \"cli\"}}'");
        }
        opts.meta = Some(meta);
    }
    Ok(opts)
}

/// Reads every line, checks them all, then inserts them in batches.
async fn many(
    ctx: &Ctx,
    kind: Option<String>,
    defaults: EnqueueOptions,
    batch: usize,
    must_have_lines: bool,
) -> Result<()> {
    let client = ctx.client()?;
    if std::io::stdin().is_terminal() {
        eprintln!("reading JSON lines from the terminal; end with ctrl-d");
    }
    let mut raw = Vec::new();
    tokio::io::stdin().read_to_end(&mut raw).await.context("cannot read stdin")?;
    let lines: Vec<(usize, &[u8])> = raw
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
        .collect();
    if lines.is_empty() && must_have_lines {
        bail!(
            "stdin is empty: with --kind and no --args, each line of stdin is a job's args; pass --args '{{}}' to \
             enqueue one job, or --stdin to read stdin even when it is empty"
        );
    }
    let reader = LineReader { kind, defaults };
    // Check every line first, so that a typo on the last line inserts nothing.
    for (n, line) in &lines {
        reader.job(*n, line)?;
    }
    let started = Instant::now();
    let (mut inserted, mut duplicates, mut through) = (0u64, 0u64, 0usize);
    for chunk in lines.chunks(batch) {
        let jobs = chunk.iter().map(|(n, line)| reader.job(*n, line)).collect::<Result<Vec<_>>>()?;
        let done = client.enqueue_many(jobs).await.map_err(|e| {
            let e = locate(e, chunk);
            if through == 0 {
                return e;
            }
            // Earlier batches are committed: say so, or a rerun duplicates them.
            let msg = crate::fail::one_line(&e);
            anyhow!("{msg} (lines 1 to {through} were enqueued before: {inserted} inserted, {duplicates} duplicates)")
        })?;
        through = chunk.last().map_or(through, |(n, _)| *n);
        for d in done {
            if d.inserted {
                inserted += 1;
            } else {
                duplicates += 1;
            }
        }
    }
    if ctx.json() {
        return output::json(&Many { inserted, duplicates });
    }
    let secs = started.elapsed().as_secs_f64();
    let dup = match duplicates {
        0 => String::new(),
        1 => ", 1 duplicate (its unique key was taken)".to_owned(),
        n => format!(", {n} duplicates (their unique keys were taken)"),
    };
    println!("inserted {inserted} jobs{dup} in {}", output::seconds(secs));
    Ok(())
}

/// Turns the library's `jobs[i].field` into the line the job came from.
fn locate(e: skiplock::Error, chunk: &[(usize, &[u8])]) -> anyhow::Error {
    if let skiplock::Error::InvalidInput { field, reason } = &e {
        let (index, field) = match field.strip_prefix("jobs[").and_then(|r| r.split_once("].")) {
            Some((i, f)) => (i.parse::<usize>().ok(), f),
            None => (Some(0), field.as_str()),
        };
        if let Some((n, _)) = index.and_then(|i| chunk.get(i)) {
            return anyhow!("invalid {field}: {reason}").context(format!("line {n}"));
        }
    }
    e.into()
}

/// Reads one line of stdin into a job.
struct LineReader {
    /// `--kind`: lines that are not job objects are args of this kind.
    kind: Option<String>,
    /// The options the flags set.
    defaults: EnqueueOptions,
}

impl LineReader {
    fn job(&self, n: usize, raw: &[u8]) -> Result<NewJob> {
        self.parse(raw).with_context(|| format!("line {n}"))
    }

    fn parse(&self, raw: &[u8]) -> Result<NewJob> {
        let text = std::str::from_utf8(raw).map_err(|_| anyhow!("is not valid UTF-8"))?.trim();
        let value: Value = serde_json::from_str(text).map_err(|e| match self.kind {
            Some(_) => anyhow!("invalid args: expected JSON: {}", input::json_error(&e)),
            None => anyhow!("invalid job: expected a JSON object: {}", input::json_error(&e)),
        })?;
        match (value, &self.kind) {
            (Value::Object(map), kind) if map.get("kind").is_some_and(|k| kind.is_none() || k.is_string()) => {
                self.object(map)
            }
            (_, Some(kind)) => Ok(NewJob::from_json(kind.clone(), text, self.defaults.clone())?),
            (Value::Object(_), None) => bail!(
                "missing kind: a job object needs {{\"kind\": …}}; or pass --kind to read each line as \
                 the args of a job of that kind"
            ),
            (_, None) => bail!(
                "invalid job: expected a JSON object such as {{\"kind\": \"email\", \"args\": {{}}}}; or pass \
                 --kind to read each line as the args of a job of that kind"
            ),
        }
    }

    /// A job object: `{"kind": …, "args": …, "queue": …, …}`.
    fn object(&self, map: Map<String, Value>) -> Result<NewJob> {
        let mut opts = self.defaults.clone();
        let (mut kind, mut args) = (None, None);
        let (mut has_run_at, mut has_delay) = (false, false);
        for (key, value) in map {
            if value.is_null() && key != "args" {
                continue; // null is absent
            }
            let expected =
                |what: &str| anyhow!("invalid {key}: expected {what}, got {}", output::clip(&value.to_string(), 40));
            let string = || value.as_str().map(str::to_owned).ok_or_else(|| expected("a string"));
            let integer = || value.as_i64().ok_or_else(|| expected("an integer"));
            let out_of_range = |n: i64| anyhow!("invalid {key}: {n} is out of range");
            match key.as_str() {
                "kind" => kind = Some(string()?),
                "args" => args = Some(value.clone()),
                "queue" => opts.queue = Some(string()?),
                "priority" => {
                    let n = integer()?;
                    opts.priority = Some(i16::try_from(n).map_err(|_| out_of_range(n))?);
                }
                "max_attempts" => {
                    let n = integer()?;
                    opts.max_attempts = Some(i32::try_from(n).map_err(|_| out_of_range(n))?);
                }
                "run_at" => {
                    opts.run_at = Some(input::timestamp("run_at", &string()?)?);
                    has_run_at = true;
                }
                "delay" => {
                    let text = string().map_err(|_| expected("a duration such as \"30s\" (or use delay_ms)"))?;
                    opts.delay = Some(input::duration("delay", &text)?);
                    has_delay = true;
                }
                "delay_ms" => {
                    let ms = value.as_u64().ok_or_else(|| expected("a whole number of milliseconds, 0 or more"))?;
                    opts.delay = Some(std::time::Duration::from_millis(ms));
                    has_delay = true;
                }
                "unique_key" => opts.unique_key = Some(string()?),
                "tags" => {
                    let tags = value.as_array().ok_or_else(|| expected("an array of strings"))?;
                    opts.tags = tags
                        .iter()
                        .map(|t| t.as_str().map(str::to_owned).ok_or_else(|| expected("an array of strings")))
                        .collect::<Result<_>>()?;
                }
                "meta" => {
                    if !value.is_object() {
                        return Err(expected("a JSON object"));
                    }
                    opts.meta = Some(value);
                }
                other => bail!("unknown field {other:?}; a job object has {JOB_FIELDS}"),
            }
        }
        match (has_run_at, has_delay) {
            (true, true) => bail!("give run_at or delay, not both"),
            (true, false) => opts.delay = None,
            (false, true) => opts.run_at = None,
            (false, false) => {}
        }
        let kind = kind.or_else(|| self.kind.clone()).ok_or_else(|| anyhow!("missing kind"))?;
        let args = args.unwrap_or_else(|| Value::Object(Map::new()));
        Ok(NewJob::new(kind, &args, opts)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(flags: &[&str]) -> Args {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        <Cli as clap::Parser>::parse_from([&["enqueue"], flags].concat()).args
    }

    #[test]
    fn stdin_is_read_when_the_help_says() {
        use Stdin::{Given, Null, Terminal};
        let lines = |must_have_lines| Ok(Input::Lines { must_have_lines });
        let never = || -> bool { panic!("stdin was looked at") };
        let cases: [(&[&str], Stdin, Result<Input, &str>); 12] = [
            (&["--stdin"], Terminal, lines(false)),
            (&["--stdin", "--kind", "k"], Given, lines(false)),
            (&["--kind", "k"], Given, lines(true)),
            (&[], Given, lines(false)),
            (&["--kind", "k"], Terminal, Ok(Input::Flags)),
            (&["--kind", "k"], Null, Ok(Input::Flags)),
            (&[], Null, Ok(Input::Flags)),
            (&["--kind", "k", "--args", "{}"], Terminal, Ok(Input::Flags)),
            (&["--kind", "k", "--args", "{}"], Null, Ok(Input::Flags)),
            (&["--stdin", "--args", "{}"], Given, Err("--args names one job's args")),
            (&["--stdin", "--unique-key", "u"], Null, Err("--unique-key is for one job; with stdin")),
            (&["--kind", "k", "--unique-key", "u"], Terminal, Ok(Input::Flags)),
        ];
        for (flags, stdin, want) in cases {
            let got = choose(&args(flags), stdin, never).map_err(|e| e.to_string());
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{flags:?} {stdin:?}"),
                (Err(got), Err(want)) => assert!(got.starts_with(want), "{flags:?} {stdin:?}: {got}"),
                (got, want) => panic!("{flags:?} {stdin:?}: got {got:?}, want {want:?}"),
            }
        }
        // A one-job flag with a given stdin: refused only if data waits.
        for flags in [&["--kind", "k", "--args", "{}"][..], &["--kind", "k", "--unique-key", "u"]] {
            assert_eq!(choose(&args(flags), Given, || false).unwrap(), Input::Flags);
            let e = choose(&args(flags), Given, || true).unwrap_err().to_string();
            assert!(e.contains("but stdin has data waiting: drop --"), "{e}");
        }
    }

    fn reader(kind: Option<&str>) -> LineReader {
        LineReader { kind: kind.map(str::to_owned), defaults: EnqueueOptions::new().queue("q") }
    }

    fn err(r: &LineReader, line: &str) -> String {
        crate::fail::one_line(&r.job(7, line.as_bytes()).unwrap_err())
    }

    #[test]
    fn bare_args_with_kind() {
        let job = reader(Some("k")).job(1, br#" [1, 2] "#).unwrap();
        assert_eq!((job.kind(), job.args()), ("k", "[1, 2]"));
        assert_eq!(job.options().queue.as_deref(), Some("q"));
        let job = reader(Some("k")).job(1, br#"{"kind": 5}"#).unwrap();
        assert_eq!(job.kind(), "k", "a non-string kind is part of the args");
    }

    #[test]
    fn job_objects_override_the_flags() {
        let line =
            br#"{"kind":"a","args":{"x":1},"queue":"other","priority":3,"delay":"5m","tags":["t"],"meta":{"m":1}}"#;
        for r in [reader(None), reader(Some("k"))] {
            let job = r.job(1, line).unwrap();
            assert_eq!((job.kind(), job.args()), ("a", r#"{"x":1}"#));
            let o = job.options();
            assert_eq!(o.queue.as_deref(), Some("other"));
            assert_eq!(o.priority, Some(3));
            assert_eq!(o.delay, Some(std::time::Duration::from_secs(300)));
            assert_eq!(o.tags, vec!["t".to_owned()]);
        }
    }

    #[test]
    fn bad_lines_name_the_line_and_field() {
        let (plain, kinded) = (reader(None), reader(Some("k")));
        assert!(err(&plain, "not json").starts_with("line 7: invalid job: expected a JSON object: expected"));
        assert!(err(&kinded, "{bad").starts_with("line 7: invalid args: expected JSON: "));
        assert!(err(&plain, r#"{"kind":"a","colour":"red"}"#).starts_with("line 7: unknown field \"colour\"; "));
        assert!(err(&plain, r#"{"args":{}}"#).starts_with("line 7: missing kind"));
        assert!(err(&plain, "[1]").starts_with("line 7: invalid job: expected a JSON object such as"));
        assert_eq!(
            err(&plain, r#"{"kind":"a","priority":"x"}"#),
            "line 7: invalid priority: expected an integer, got \"x\""
        );
        assert_eq!(err(&plain, r#"{"kind":"a","priority":70000}"#), "line 7: invalid priority: 70000 is out of range");
        assert!(err(&plain, r#"{"kind":"a","delay":"-5s"}"#).starts_with("line 7: invalid delay: \"-5s\" is negative"));
        assert!(err(&plain, r#"{"kind":"a","delay_ms":-5}"#).starts_with("line 7: invalid delay_ms: expected a whole"));
        assert_eq!(
            err(&plain, r#"{"kind":"a","delay":"1s","run_at":"2030-01-01T00:00:00Z"}"#),
            "line 7: give run_at or delay, not both"
        );
        assert_eq!(err(&plain, "\u{0}\u{ff}").split(':').next(), Some("line 7"));
        let bad_utf8 = crate::fail::one_line(&plain.job(7, b"{\"kind\":\"\xff\"}").unwrap_err());
        assert_eq!(bad_utf8, "line 7: is not valid UTF-8");
    }

    #[test]
    fn library_errors_point_at_lines() {
        let chunk: Vec<(usize, &[u8])> = vec![(3, b"".as_slice()), (9, b"".as_slice())];
        let e = skiplock::Error::InvalidInput { field: "jobs[1].queue".into(), reason: "must not be empty".into() };
        assert_eq!(crate::fail::one_line(&locate(e, &chunk)), "line 9: invalid queue: must not be empty");
        let e = skiplock::Error::InvalidInput { field: "priority".into(), reason: "10 is out of range".into() };
        assert_eq!(crate::fail::one_line(&locate(e, &chunk[..1])), "line 3: invalid priority: 10 is out of range");
    }
}
