//! Hearing back from the mail world: the tags that make a bounce or an unsubscribe traceable
//! (`tags`), reading what comes back (`report`: DSNs, ARF complaints, auto-replies), acting on
//! it (`apply`), and the inbound SMTP listener (`listener`).

pub mod apply;
pub mod listener;
pub mod report;
pub mod tags;
pub mod webhooks;
