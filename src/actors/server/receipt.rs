//! `InputReceipt`: the Server's promise to tell the Portal when one numbered
//! line of input has finished running, so the Portal can forget its copy.
//!
//! A receipt travels with its line (`SessionCommand`, then `AccountInput`) to
//! the actor that runs it. That actor calls [`acknowledge_when_done`] *before*
//! it runs the command: actix polls an actor's waiting futures newest first,
//! so the acknowledgement, waiting at the bottom, runs only once every
//! `ctx.wait` the command started (a password check, a move in the `World`,
//! and whatever those start in turn) has finished and sent its output. The
//! acknowledgement then follows that output on the same link, so a Portal
//! that has the acknowledgement has the output too. This module never runs a
//! command and never touches game state.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::prelude::*;

use super::portals::Portals;
use crate::protocols::link::ServerToPortal;
use crate::session::SessionId;

/// One line's number, and where its session records what is done.
#[derive(Debug, Clone)]
pub struct InputReceipt {
    sessid: SessionId,
    seq: u64,
    /// The highest number of this session that has finished: the handler
    /// reads it to answer a line the Portal sends again.
    done: Arc<AtomicU64>,
}

impl InputReceipt {
    /// The receipt for line `seq` of `sessid`; `None` for an unnumbered line
    /// (from a Portal that keeps no copies).
    pub fn new(sessid: SessionId, seq: u64, done: Arc<AtomicU64>) -> Option<Self> {
        (seq > 0).then_some(Self { sessid, seq, done })
    }

    /// Records the line as done and tells its Portal.
    pub fn acknowledge(&self, portals: &Portals) {
        let previous = self.done.fetch_max(self.seq, Ordering::AcqRel);
        portals.send(ServerToPortal::InputDone {
            sessid: self.sessid,
            seq: previous.max(self.seq),
        });
    }
}

/// Acknowledges `receipt` once everything the actor starts waiting for from
/// now on has finished. Call it before running the command the receipt is
/// for; with no receipt it does nothing.
pub fn acknowledge_when_done<A>(
    receipt: Option<InputReceipt>,
    portals: &Portals,
    ctx: &mut Context<A>,
) where
    A: Actor<Context = Context<A>>,
{
    let Some(receipt) = receipt else {
        return;
    };
    let portals = portals.clone();
    ctx.wait(actix::fut::ready(()).map(move |(), _: &mut A, _| receipt.acknowledge(&portals)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Stands in for the Portal's side of the link: the actor under test
    /// records where the acknowledgement falls among its own outputs.
    struct Runner {
        log: Arc<std::sync::Mutex<Vec<String>>>,
    }

    impl Actor for Runner {
        type Context = Context<Self>;
    }

    #[derive(Message)]
    #[rtype(result = "()")]
    struct Run {
        name: &'static str,
        /// Nested waits the command starts, each after a short delay.
        steps: usize,
    }

    impl Runner {
        fn push(&self, what: String) {
            self.log.lock().unwrap().push(what);
        }

        fn step(&mut self, name: &'static str, left: usize, ctx: &mut Context<Self>) {
            if left == 0 {
                return;
            }
            ctx.wait(
                actix::fut::wrap_future::<_, Self>(tokio::time::sleep(Duration::from_millis(5)))
                    .map(move |(), act, ctx| {
                        act.push(format!("{name} output {left}"));
                        act.step(name, left - 1, ctx);
                    }),
            );
        }
    }

    impl Handler<Run> for Runner {
        type Result = ();

        fn handle(&mut self, msg: Run, ctx: &mut Context<Self>) {
            let log = Arc::clone(&self.log);
            let name = msg.name;
            ctx.wait(actix::fut::ready(()).map(move |(), _: &mut Self, _| {
                log.lock().unwrap().push(format!("{name} done"));
            }));
            self.step(name, msg.steps, ctx);
        }
    }

    #[actix::test]
    async fn the_acknowledgement_waits_for_every_nested_wait_of_its_command() {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let runner = Runner {
            log: Arc::clone(&log),
        }
        .start();
        runner.do_send(Run {
            name: "a",
            steps: 3,
        });
        runner.do_send(Run {
            name: "b",
            steps: 0,
        });
        runner
            .send(Run {
                name: "c",
                steps: 1,
            })
            .await
            .unwrap();
        // `send` answers when the handler returns; the waits run after it.
        tokio::time::timeout(Duration::from_secs(10), async {
            while log.lock().unwrap().len() < 7 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
        assert_eq!(
            *log.lock().unwrap(),
            [
                "a output 3",
                "a output 2",
                "a output 1",
                "a done",
                "b done",
                "c output 1",
                "c done",
            ]
        );
    }

    #[test]
    fn an_unnumbered_line_has_no_receipt() {
        let done = Arc::new(AtomicU64::new(0));
        assert!(InputReceipt::new(SessionId(1), 0, Arc::clone(&done)).is_none());
        assert!(InputReceipt::new(SessionId(1), 1, done).is_some());
    }
}
