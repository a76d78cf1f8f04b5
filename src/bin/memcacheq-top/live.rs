//! The live view: a thread polls the server every interval, this one draws
//! the latest [`View`] with ratatui and reads keys, so `q` works at once
//! even while a poll waits on a slow server.

use std::io;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::thread;
use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Alignment, Constraint, Layout};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::{DefaultTerminal, Frame};

use crate::poll::{Poller, Sample};
use crate::view::{View, COLUMNS};

/// How often keys are looked at, and new polls picked up.
const TICK: Duration = Duration::from_millis(100);

/// What is on screen.
struct Screen {
    /// HOST:PORT polled.
    addr: String,
    /// The last poll that worked: the next one's rates are against it.
    last: Option<Sample>,
    /// What the last poll that worked showed.
    view: Option<View>,
    /// Why the latest poll failed, until one works again.
    error: Option<String>,
}

/// Runs until `q`, Esc or Ctrl-C.
pub fn run(addr: &str, interval: Duration) -> io::Result<()> {
    let (tx, polls) = mpsc::channel();
    let target = addr.to_string();
    // Ends with the process, or when the view has gone and a send fails.
    thread::spawn(move || {
        let mut poller = Poller::new(&target);
        while tx.send(poller.poll()).is_ok() {
            thread::sleep(interval);
        }
    });
    let mut terminal = ratatui::try_init()?;
    let result = event_loop(&mut terminal, addr, &polls);
    ratatui::restore();
    result
}

fn event_loop(
    terminal: &mut DefaultTerminal,
    addr: &str,
    polls: &Receiver<Result<Sample, String>>,
) -> io::Result<()> {
    let mut screen = Screen {
        addr: addr.to_string(),
        last: None,
        view: None,
        error: None,
    };
    loop {
        loop {
            match polls.try_recv() {
                Ok(Ok(sample)) => {
                    screen.view = Some(View::new(addr, screen.last.as_ref(), &sample));
                    screen.last = Some(sample);
                    screen.error = None;
                }
                Ok(Err(e)) => screen.error = Some(e),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Ok(()),
            }
        }
        terminal.draw(|frame| draw(frame, &screen))?;
        if event::poll(TICK)? {
            if let Event::Key(key) = event::read()? {
                let ctrl_c =
                    key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
                let quit = matches!(key.code, KeyCode::Char('q') | KeyCode::Esc);
                if key.kind == KeyEventKind::Press && (quit || ctrl_c) {
                    return Ok(());
                }
            }
        }
    }
}

fn draw(frame: &mut Frame, screen: &Screen) {
    let [header, table, footer] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let status = match &screen.error {
        Some(e) => Line::from(format!("{e} (trying again)")).red(),
        None => Line::from("q: quit").dim(),
    };
    frame.render_widget(status, footer);
    let Some(view) = &screen.view else {
        let waiting = format!("{}: waiting for the first poll", screen.addr);
        frame.render_widget(Paragraph::new(waiting), header);
        return;
    };
    let [first, second] = view.header();
    frame.render_widget(
        Paragraph::new(vec![Line::from(first).bold(), Line::from(second)]),
        header,
    );
    let cell = |i: usize, text: String| {
        let line = Line::from(text);
        Cell::from(if i == 0 {
            line
        } else {
            line.alignment(Alignment::Right)
        })
    };
    let titles = Row::new(
        COLUMNS
            .iter()
            .enumerate()
            .map(|(i, t)| cell(i, t.to_string())),
    )
    .style(Style::new().add_modifier(Modifier::REVERSED));
    let rows = view
        .rows
        .iter()
        .map(|r| Row::new(r.cells().into_iter().enumerate().map(|(i, c)| cell(i, c))));
    let widths = view.widths().map(|w| Constraint::Length(w as u16));
    frame.render_widget(
        Table::new(rows, widths).header(titles).column_spacing(2),
        table,
    );
}
