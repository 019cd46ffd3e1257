//! The server's side of DAVE for one call: the voice gateway as MLS external sender (built on
//! openmls: it signs Add/Remove proposals and relays commits, welcomes and transitions), plus
//! internal "listener" members — davey sessions for other user ids — that join the group the
//! way a second person in the channel would, so the server can decrypt the bot's media.
//!
//! Everything here is synchronous; the gateway connection feeds it the bot's DAVE messages and
//! sends out what it returns.

use std::collections::HashMap;
use std::num::NonZeroU16;

use davey::{DaveSession, MediaType, ProposalsOperationType};
use openmls::prelude::tls_codec::{DeserializeBytes, Serialize as _};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::wire::op;

const PROTOCOL_VERSION: NonZeroU16 = NonZeroU16::new(1).expect("non-zero");
const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMP256_AES128GCM_SHA256_P256;

/// How the bot enters the MLS group when listeners are already in the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DaveJoin {
    /// A listener commits the bot's Add; the bot receives a Welcome (op 30).
    #[default]
    WelcomeBot,
    /// When no group exists yet, the bot receives proposals adding the listeners (op 27) and
    /// commits them (op 28); the bot's own commit is announced back (op 29).
    BotCommits,
}

/// A message for the bot's gateway connection.
#[derive(Debug, Clone, PartialEq)]
pub enum ToBot {
    Json(u8, Value),
    Binary(u8, Vec<u8>),
}

impl ToBot {
    pub fn opcode(&self) -> u8 {
        match self {
            ToBot::Json(op, _) | ToBot::Binary(op, _) => *op,
        }
    }
}

/// Result of trying to decrypt one of the bot's frames.
#[derive(Debug)]
pub enum DaveDecrypt {
    Ok(Vec<u8>),
    /// A listener holds keys for the bot but the frame did not decrypt.
    Failed(String),
    /// No listener shares a group with the bot.
    NoMember,
}

struct Listener {
    user_id: u64,
    session: DaveSession,
    /// The latest key package, not yet used to join.
    key_package: Option<KeyPackage>,
    in_group: bool,
    /// Removed by a proposal; kept until the transition that removes it executes.
    leaving: bool,
}

#[derive(Debug, Default)]
struct AwaitedCommit {
    /// Listeners the bot's commit should add (by user id).
    adds: Vec<u64>,
    /// Listeners the bot's commit should remove.
    removes: Vec<u64>,
}

/// DAVE state of one call (one guild's voice channel).
pub struct DaveCall {
    channel_id: u64,
    bot_user_id: u64,
    join: DaveJoin,
    provider: OpenMlsRustCrypto,
    signer: SignatureKeyPair,
    external_sender: Vec<u8>,
    group_id: GroupId,
    /// Epoch of the established group; 0 while there is none.
    epoch: u64,
    listeners: Vec<Listener>,
    next_listener_id: u64,
    bot_in_group: bool,
    bot_key_package: Option<KeyPackage>,
    awaiting: Option<AwaitedCommit>,
    /// Prepared transitions: id -> protocol version.
    pending: HashMap<u16, u16>,
    next_transition: u16,
    /// Protocol version of the last executed transition.
    pub protocol_version: u16,
    /// Whether the bot's media is expected to be DAVE-encrypted now (a transition into a
    /// group shared with a listener has executed).
    pub media_keys_live: bool,
    /// Human-readable notes of what went wrong (surfaced as events by the caller).
    pub errors: Vec<String>,
}

fn err(e: impl std::fmt::Debug) -> String {
    format!("{e:?}")
}

impl DaveCall {
    /// A call in `channel_id` for the bot `bot_user_id`, with `listeners` other members
    /// already present.
    pub fn new(
        channel_id: u64,
        bot_user_id: u64,
        listeners: u32,
        join: DaveJoin,
    ) -> Result<DaveCall, String> {
        let signer = SignatureKeyPair::new(CIPHERSUITE.signature_algorithm()).map_err(err)?;
        let sender = ExternalSender::new(
            signer.public().into(),
            BasicCredential::new(b"fake-discord".to_vec()).into(),
        );
        let external_sender = sender.tls_serialize_detached().map_err(err)?;
        let mut call = DaveCall {
            channel_id,
            bot_user_id,
            join,
            provider: OpenMlsRustCrypto::default(),
            signer,
            external_sender,
            group_id: GroupId::from_slice(&channel_id.to_be_bytes()),
            epoch: 0,
            listeners: Vec::new(),
            next_listener_id: 0,
            bot_in_group: false,
            bot_key_package: None,
            awaiting: None,
            pending: HashMap::new(),
            next_transition: 1,
            protocol_version: 1,
            media_keys_live: false,
            errors: Vec::new(),
        };
        for _ in 0..listeners {
            call.new_listener()?;
        }
        Ok(call)
    }

    /// The serialized external sender (payload of op 25).
    pub fn external_sender(&self) -> &[u8] {
        &self.external_sender
    }

    /// User ids of the listeners currently in the call.
    pub fn listener_ids(&self) -> Vec<u64> {
        self.listeners
            .iter()
            .filter(|l| !l.leaving)
            .map(|l| l.user_id)
            .collect()
    }

    /// Epoch of the established group (0: none).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether the bot is a member of the established group.
    pub fn bot_in_group(&self) -> bool {
        self.bot_in_group
    }

    /// Transitions announced and not yet executed.
    pub fn pending_transitions(&self) -> Vec<u16> {
        let mut v: Vec<u16> = self.pending.keys().copied().collect();
        v.sort_unstable();
        v
    }

    fn new_listener(&mut self) -> Result<u64, String> {
        self.next_listener_id += 1;
        // Listener ids are fixed offsets from the bot's, so they never collide with it.
        let user_id = self
            .bot_user_id
            .wrapping_add(1_000_000 + self.next_listener_id);
        let mut session =
            DaveSession::new(PROTOCOL_VERSION, user_id, self.channel_id, None).map_err(err)?;
        session
            .set_external_sender(&self.external_sender)
            .map_err(err)?;
        let kp = session.create_key_package().map_err(err)?;
        let key_package = Some(self.validate_key_package(&kp)?);
        self.listeners.push(Listener {
            user_id,
            session,
            key_package,
            in_group: false,
            leaving: false,
        });
        Ok(user_id)
    }

    fn validate_key_package(&self, bytes: &[u8]) -> Result<KeyPackage, String> {
        KeyPackageIn::tls_deserialize_exact_bytes(bytes)
            .map_err(|e| format!("key package does not parse: {e:?}"))?
            .validate(self.provider.crypto(), ProtocolVersion::Mls10)
            .map_err(|e| format!("key package invalid: {e:?}"))
    }

    fn next_transition_id(&mut self) -> u16 {
        let id = self.next_transition;
        self.next_transition = self.next_transition.wrapping_add(1).max(1);
        id
    }

    fn propose_add(&self, kp: KeyPackage) -> Result<Vec<u8>, String> {
        let msg = ExternalProposal::new_add::<OpenMlsRustCrypto>(
            kp,
            self.group_id.clone(),
            GroupEpoch::from(self.epoch),
            &self.signer,
            SenderExtensionIndex::new(0),
        )
        .map_err(err)?;
        msg.tls_serialize_detached().map_err(err)
    }

    fn propose_remove(&self, leaf: LeafNodeIndex) -> Result<Vec<u8>, String> {
        let msg = ExternalProposal::new_remove::<OpenMlsRustCrypto>(
            leaf,
            self.group_id.clone(),
            GroupEpoch::from(self.epoch),
            &self.signer,
            SenderExtensionIndex::new(0),
        )
        .map_err(err)?;
        msg.tls_serialize_detached().map_err(err)
    }

    /// Leaf of a user in the established group, as seen by an in-group listener.
    fn leaf_of(&self, user_id: u64) -> Option<LeafNodeIndex> {
        let l = self.listeners.iter().find(|l| l.in_group)?;
        let group = l.session.group()?;
        group
            .members()
            .find(|m| m.credential.serialized_content() == user_id.to_be_bytes())
            .map(|m| m.index)
    }

    fn proposals_payload(messages: &[Vec<u8>]) -> Result<Vec<u8>, String> {
        let joined: Vec<u8> = messages.concat();
        VLBytes::new(joined).tls_serialize_detached().map_err(err)
    }

    fn proposals_op(payload: &[u8]) -> ToBot {
        let mut p = Vec::with_capacity(payload.len() + 1);
        p.push(ProposalsOperationType::APPEND as u8);
        p.extend_from_slice(payload);
        ToBot::Binary(op::DAVE_MLS_PROPOSALS, p)
    }

    fn with_transition(id: u16, body: &[u8]) -> Vec<u8> {
        let mut p = id.to_be_bytes().to_vec();
        p.extend_from_slice(body);
        p
    }

    /// Messages sent right after Session Description: who else is in the call (op 11) and
    /// the external sender (op 25).
    pub fn start(&self) -> Vec<ToBot> {
        let mut out = Vec::new();
        let ids = self.listener_ids();
        if !ids.is_empty() {
            out.push(ToBot::Json(
                op::CLIENTS_CONNECT,
                json!({ "user_ids": ids.iter().map(|i| i.to_string()).collect::<Vec<_>>() }),
            ));
        }
        out.push(ToBot::Binary(
            op::DAVE_MLS_EXTERNAL_SENDER,
            self.external_sender.clone(),
        ));
        out
    }

    /// The bot sent a key package (op 26).
    pub fn on_key_package(&mut self, bytes: &[u8]) -> Result<Vec<ToBot>, String> {
        let kp = self.validate_key_package(bytes)?;
        let identity = kp.leaf_node().credential().serialized_content();
        if identity != self.bot_user_id.to_be_bytes() {
            return Err(format!(
                "key package identity {identity:02x?} is not the bot's user id {} as big-endian u64",
                self.bot_user_id
            ));
        }
        self.bot_key_package = Some(kp);
        self.try_join_bot()
    }

    /// Brings the bot into a group with the listeners, if there are any.
    fn try_join_bot(&mut self) -> Result<Vec<ToBot>, String> {
        if self.listeners.iter().all(|l| l.leaving) {
            return Ok(Vec::new()); // sole member: nothing to join
        }
        let Some(bot_kp) = self.bot_key_package.clone() else {
            return Ok(Vec::new());
        };
        let established = self.listeners.iter().any(|l| l.in_group);
        if !established && self.join == DaveJoin::BotCommits {
            // The bot creates the group by committing Adds for every listener.
            let mut msgs = Vec::new();
            let mut adds = Vec::new();
            for l in self.listeners.iter().filter(|l| !l.leaving) {
                if let Some(kp) = l.key_package.clone() {
                    msgs.push(self.propose_add(kp)?);
                    adds.push(l.user_id);
                }
            }
            let payload = Self::proposals_payload(&msgs)?;
            self.awaiting = Some(AwaitedCommit {
                adds,
                removes: Vec::new(),
            });
            return Ok(vec![Self::proposals_op(&payload)]);
        }
        // A listener commits: the bot's Add (replacing its old leaf), plus any listener not
        // yet in the group.
        let mut msgs = Vec::new();
        if established && let Some(leaf) = self.leaf_of(self.bot_user_id) {
            msgs.push(self.propose_remove(leaf)?);
        }
        msgs.push(self.propose_add(bot_kp)?);
        let committer = match self.listeners.iter().position(|l| l.in_group) {
            Some(i) => i,
            None => self
                .listeners
                .iter()
                .position(|l| !l.leaving)
                .expect("a listener"),
        };
        for (i, l) in self.listeners.iter().enumerate() {
            if i != committer
                && !l.in_group
                && !l.leaving
                && let Some(kp) = l.key_package.clone()
            {
                msgs.push(self.propose_add(kp)?);
            }
        }
        let payload = Self::proposals_payload(&msgs)?;
        let cw = {
            let l = &mut self.listeners[committer];
            l.session
                .process_proposals(ProposalsOperationType::APPEND, &payload, None)
                .map_err(|e| format!("listener could not process proposals: {e:?}"))?
                .ok_or("listener produced no commit")?
        };
        let welcome = cw.welcome.clone().ok_or("listener commit has no welcome")?;
        for (i, l) in self.listeners.iter_mut().enumerate() {
            if i == committer {
                l.session
                    .process_commit(&cw.commit)
                    .map_err(|e| format!("committer: {e:?}"))?;
                l.in_group = true;
            } else if l.in_group {
                l.session
                    .process_proposals(ProposalsOperationType::APPEND, &payload, None)
                    .map_err(|e| format!("member proposals: {e:?}"))?;
                l.session
                    .process_commit(&cw.commit)
                    .map_err(|e| format!("member commit: {e:?}"))?;
            } else if !l.leaving {
                l.session
                    .process_welcome(&welcome, None)
                    .map_err(|e| format!("listener welcome: {e:?}"))?;
                l.in_group = true;
                l.key_package = None;
            }
        }
        self.epoch += 1;
        self.bot_in_group = true;
        self.bot_key_package = None;
        let id = self.prepare_listeners(1)?;
        Ok(vec![ToBot::Binary(
            op::DAVE_MLS_WELCOME,
            Self::with_transition(id, &welcome),
        )])
    }

    /// Prepares a transition on every in-group listener; returns its id.
    fn prepare_listeners(&mut self, protocol_version: u16) -> Result<u16, String> {
        let id = self.next_transition_id();
        for l in self
            .listeners
            .iter_mut()
            .filter(|l| l.in_group || l.leaving)
        {
            l.session
                .prepare_transition(id, protocol_version)
                .map_err(|e| format!("listener prepare transition: {e:?}"))?;
        }
        self.pending.insert(id, protocol_version);
        Ok(id)
    }

    /// The bot sent a commit and maybe a welcome (op 28).
    pub fn on_commit_welcome(&mut self, bytes: &[u8]) -> Result<Vec<ToBot>, String> {
        let (msg, rest) = MlsMessageIn::tls_deserialize_bytes(bytes)
            .map_err(|e| format!("commit does not parse: {e:?}"))?;
        drop(msg);
        let commit = &bytes[..bytes.len() - rest.len()];
        let welcome = (!rest.is_empty()).then_some(rest);
        let Some(awaited) = self.awaiting.take() else {
            return Err("commit received while no proposals were outstanding".into());
        };
        let mut problems = Vec::new();
        for l in self.listeners.iter_mut() {
            if awaited.adds.contains(&l.user_id) {
                match welcome {
                    Some(w) => match l.session.process_welcome(w, None) {
                        Ok(()) => {
                            l.in_group = true;
                            l.key_package = None;
                        }
                        Err(e) => problems.push(format!("listener {} welcome: {e:?}", l.user_id)),
                    },
                    None => problems.push("commit adds a listener but carries no welcome".into()),
                }
            } else if l.in_group && !awaited.removes.contains(&l.user_id) {
                match l.session.process_commit(commit) {
                    Ok(true) => {}
                    Ok(false) => {
                        problems.push(format!("listener {} ignored the commit", l.user_id))
                    }
                    Err(e) => problems.push(format!("listener {} commit: {e:?}", l.user_id)),
                }
            }
        }
        for l in self.listeners.iter_mut() {
            if awaited.removes.contains(&l.user_id) {
                l.in_group = false;
                l.leaving = true;
            }
        }
        self.epoch += 1;
        self.bot_in_group = true;
        self.bot_key_package = None;
        let id = self.prepare_listeners(1)?;
        self.errors.extend(problems);
        Ok(vec![ToBot::Binary(
            op::DAVE_MLS_ANNOUNCE_COMMIT_TRANSITION,
            Self::with_transition(id, commit),
        )])
    }

    /// The bot is ready for a transition (op 23): execute it.
    pub fn on_transition_ready(&mut self, transition_id: u16) -> Result<Vec<ToBot>, String> {
        let Some(version) = self.pending.remove(&transition_id) else {
            return Err(format!(
                "transition ready for unknown transition {transition_id}"
            ));
        };
        Ok(self.execute(transition_id, version))
    }

    fn execute(&mut self, transition_id: u16, version: u16) -> Vec<ToBot> {
        for l in self.listeners.iter_mut() {
            if let Err(e) = l.session.execute_transition(transition_id) {
                self.errors
                    .push(format!("listener execute transition: {e:?}"));
            }
        }
        self.listeners.retain(|l| !l.leaving);
        self.protocol_version = version;
        if version == 0 {
            self.epoch = 0;
            self.bot_in_group = false;
            for l in self.listeners.iter_mut() {
                l.in_group = false;
            }
        }
        self.media_keys_live =
            version != 0 && self.bot_in_group && self.listeners.iter().any(|l| l.in_group);
        vec![ToBot::Json(
            op::DAVE_EXECUTE_TRANSITION,
            json!({ "transition_id": transition_id }),
        )]
    }

    /// The bot could not process a commit or welcome (op 31); it will send a new key package.
    pub fn on_invalid_commit_welcome(&mut self, transition_id: u16) {
        self.pending.remove(&transition_id);
        self.bot_in_group = false;
        self.media_keys_live = false;
    }

    /// Script: a new listener joins the call. Returns its user id and the messages for the bot.
    pub fn add_listener(&mut self) -> Result<(u64, Vec<ToBot>), String> {
        let uid = self.new_listener()?;
        let mut out = vec![ToBot::Json(
            op::CLIENTS_CONNECT,
            json!({ "user_ids": [uid.to_string()] }),
        )];
        let established = self.listeners.iter().any(|l| l.in_group);
        if self.bot_in_group || (!established && self.bot_key_package.is_some()) {
            // The bot commits the new listener's Add.
            let kp = self
                .listeners
                .last()
                .and_then(|l| l.key_package.clone())
                .expect("new listener");
            let payload = Self::proposals_payload(&[self.propose_add(kp)?])?;
            for l in self.listeners.iter_mut().filter(|l| l.in_group) {
                l.session
                    .process_proposals(ProposalsOperationType::APPEND, &payload, None)
                    .map_err(|e| format!("member proposals: {e:?}"))?;
            }
            self.awaiting = Some(AwaitedCommit {
                adds: vec![uid],
                removes: Vec::new(),
            });
            out.push(Self::proposals_op(&payload));
        }
        Ok((uid, out))
    }

    /// Script: a listener leaves the call. The bot is asked to commit its removal.
    pub fn remove_listener(&mut self, user_id: u64) -> Result<Vec<ToBot>, String> {
        let idx = self
            .listeners
            .iter()
            .position(|l| l.user_id == user_id && !l.leaving)
            .ok_or_else(|| format!("no listener {user_id}"))?;
        let mut out = vec![ToBot::Json(
            op::CLIENT_DISCONNECT,
            json!({ "user_id": user_id.to_string() }),
        )];
        if !(self.listeners[idx].in_group && self.bot_in_group) {
            self.listeners.remove(idx);
            return Ok(out);
        }
        let leaf = self.listeners[idx]
            .session
            .own_leaf_index()
            .ok_or("listener has no leaf")?;
        let payload = Self::proposals_payload(&[self.propose_remove(leaf)?])?;
        for (i, l) in self.listeners.iter_mut().enumerate() {
            if i != idx && l.in_group {
                l.session
                    .process_proposals(ProposalsOperationType::APPEND, &payload, None)
                    .map_err(|e| format!("member proposals: {e:?}"))?;
            }
        }
        self.awaiting = Some(AwaitedCommit {
            adds: Vec::new(),
            removes: vec![user_id],
        });
        out.push(Self::proposals_op(&payload));
        Ok(out)
    }

    /// Script: the gateway starts a new group (op 24, epoch 1). Listeners re-initialise and
    /// the bot is expected to send a new key package.
    pub fn reset_epoch(&mut self) -> Result<Vec<ToBot>, String> {
        self.epoch = 0;
        self.bot_in_group = false;
        self.media_keys_live = false;
        self.bot_key_package = None;
        self.awaiting = None;
        self.listeners.retain(|l| !l.leaving);
        for l in self.listeners.iter_mut() {
            l.session
                .reinit(PROTOCOL_VERSION, l.user_id, self.channel_id, None)
                .map_err(|e| format!("listener reinit: {e:?}"))?;
            let kp = l.session.create_key_package().map_err(err)?;
            l.key_package = Some(
                KeyPackageIn::tls_deserialize_exact_bytes(&kp)
                    .map_err(err)?
                    .validate(self.provider.crypto(), ProtocolVersion::Mls10)
                    .map_err(err)?,
            );
            l.in_group = false;
        }
        Ok(vec![ToBot::Json(
            op::DAVE_PREPARE_EPOCH,
            json!({ "protocol_version": 1, "epoch": 1 }),
        )])
    }

    /// Script: downgrade the call to transport encryption only (op 21 with version 0).
    pub fn downgrade(&mut self) -> Result<Vec<ToBot>, String> {
        let id = self.prepare_listeners(0)?;
        Ok(vec![ToBot::Json(
            op::DAVE_PREPARE_TRANSITION,
            json!({ "protocol_version": 0, "transition_id": id }),
        )])
    }

    /// Script: every listener leaves and the bot is told to start over as the sole member:
    /// op 13 for each listener, op 24 (epoch 1), then op 21 with transition id 0.
    pub fn sole_member(&mut self) -> Result<Vec<ToBot>, String> {
        let mut out: Vec<ToBot> = self
            .listeners
            .iter()
            .filter(|l| !l.leaving)
            .map(|l| {
                ToBot::Json(
                    op::CLIENT_DISCONNECT,
                    json!({ "user_id": l.user_id.to_string() }),
                )
            })
            .collect();
        self.listeners.clear();
        self.epoch = 0;
        self.bot_in_group = false;
        self.bot_key_package = None;
        self.awaiting = None;
        self.media_keys_live = false;
        out.push(ToBot::Json(
            op::DAVE_PREPARE_EPOCH,
            json!({ "protocol_version": 1, "epoch": 1 }),
        ));
        out.push(ToBot::Json(
            op::DAVE_PREPARE_TRANSITION,
            json!({ "protocol_version": 1, "transition_id": 0 }),
        ));
        Ok(out)
    }

    /// Script: announce a commit that cannot be valid, to make the bot send op 31.
    pub fn invalid_commit(&mut self) -> Vec<ToBot> {
        let id = self.next_transition_id();
        self.pending.insert(id, 1);
        // An MLSMessage header (version 1, wire format public message) with garbage after it.
        let garbage = [0x00, 0x01, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef];
        vec![ToBot::Binary(
            op::DAVE_MLS_ANNOUNCE_COMMIT_TRANSITION,
            Self::with_transition(id, &garbage),
        )]
    }

    /// Decrypts one of the bot's DAVE frames with any listener that shares its group.
    pub fn decrypt(&mut self, frame: &[u8]) -> DaveDecrypt {
        let mut last_error = None;
        for l in self.listeners.iter_mut() {
            match l.session.decrypt(self.bot_user_id, MediaType::AUDIO, frame) {
                Ok(plain) => return DaveDecrypt::Ok(plain),
                Err(davey::errors::DecryptError::NoDecryptorForUser) => {}
                Err(e) => last_error = Some(format!("{e:?}")),
            }
        }
        match last_error {
            Some(e) => DaveDecrypt::Failed(e),
            None => DaveDecrypt::NoMember,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOT: u64 = 111_222_333;
    const CHANNEL: u64 = 987_654_321;

    fn bot_session() -> DaveSession {
        DaveSession::new(PROTOCOL_VERSION, BOT, CHANNEL, None).unwrap()
    }

    fn binary(m: &ToBot) -> &[u8] {
        match m {
            ToBot::Binary(_, p) => p,
            other => panic!("expected binary, got {other:?}"),
        }
    }

    /// The bot (a davey session standing in for a client) joins a call with one listener,
    /// is welcomed, and its encrypted frames decrypt on the server.
    #[test]
    fn bot_is_welcomed_and_its_frames_decrypt() {
        let mut call = DaveCall::new(CHANNEL, BOT, 1, DaveJoin::WelcomeBot).unwrap();
        let start = call.start();
        assert_eq!(start[0].opcode(), op::CLIENTS_CONNECT);
        assert_eq!(start[1].opcode(), op::DAVE_MLS_EXTERNAL_SENDER);
        let mut bot = bot_session();
        bot.set_external_sender(binary(&start[1])).unwrap();
        let out = call
            .on_key_package(&bot.create_key_package().unwrap())
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].opcode(), op::DAVE_MLS_WELCOME);
        let p = binary(&out[0]);
        let tid = u16::from_be_bytes([p[0], p[1]]);
        assert_ne!(tid, 0);
        bot.process_welcome(&p[2..], Some(&[BOT, call.listener_ids()[0]]))
            .unwrap();
        bot.prepare_transition(tid, 1).unwrap();
        let exec = call.on_transition_ready(tid).unwrap();
        assert_eq!(
            exec,
            vec![ToBot::Json(
                op::DAVE_EXECUTE_TRANSITION,
                json!({"transition_id": tid})
            )]
        );
        assert!(bot.execute_transition(tid).unwrap());
        assert!(call.media_keys_live);
        let frame = bot.encrypt_opus(&[0x78, 1, 2, 3, 4]).unwrap().into_owned();
        assert!(crate::wire::is_dave_frame(&frame));
        match call.decrypt(&frame) {
            DaveDecrypt::Ok(p) => assert_eq!(p, vec![0x78, 1, 2, 3, 4]),
            other => panic!("{other:?}"),
        }
        // A frame with a flipped byte fails.
        let mut bad = frame.clone();
        bad[1] ^= 0x40;
        assert!(matches!(call.decrypt(&bad), DaveDecrypt::Failed(_)));
    }

    /// The bot commits the listener's Add itself; then a second listener joins and the first
    /// leaves mid-stream, each through a commit by the bot.
    #[test]
    fn bot_commits_adds_and_removes() {
        let mut call = DaveCall::new(CHANNEL, BOT, 1, DaveJoin::BotCommits).unwrap();
        let start = call.start();
        let mut bot = bot_session();
        bot.set_external_sender(binary(&start[1])).unwrap();
        let mut recognized: Vec<u64> = vec![BOT, call.listener_ids()[0]];
        let out = call
            .on_key_package(&bot.create_key_package().unwrap())
            .unwrap();
        assert_eq!(out[0].opcode(), op::DAVE_MLS_PROPOSALS);
        let run_commit =
            |call: &mut DaveCall, bot: &mut DaveSession, proposals: &[u8], recognized: &[u64]| {
                assert_eq!(proposals[0], 0, "append");
                let cw = bot
                    .process_proposals(
                        ProposalsOperationType::APPEND,
                        &proposals[1..],
                        Some(recognized),
                    )
                    .unwrap()
                    .unwrap();
                let mut op28 = cw.commit.clone();
                if let Some(w) = &cw.welcome {
                    op28.extend_from_slice(w);
                }
                let out = call.on_commit_welcome(&op28).unwrap();
                assert!(call.errors.is_empty(), "{:?}", call.errors);
                let p = binary(&out[0]).to_vec();
                assert_eq!(out[0].opcode(), op::DAVE_MLS_ANNOUNCE_COMMIT_TRANSITION);
                let tid = u16::from_be_bytes([p[0], p[1]]);
                assert!(bot.process_commit(&p[2..]).unwrap());
                bot.prepare_transition(tid, 1).unwrap();
                call.on_transition_ready(tid).unwrap();
                bot.execute_transition(tid).unwrap();
            };
        run_commit(&mut call, &mut bot, binary(&out[0]), &recognized);
        let frame = bot.encrypt_opus(&[0x78, 9]).unwrap().into_owned();
        assert!(matches!(call.decrypt(&frame), DaveDecrypt::Ok(_)));
        assert_eq!(call.epoch(), 1);

        let first = call.listener_ids()[0];
        let (second, out) = call.add_listener().unwrap();
        recognized.push(second);
        assert_eq!(out[0].opcode(), op::CLIENTS_CONNECT);
        run_commit(&mut call, &mut bot, binary(&out[1]), &recognized);
        assert_eq!(call.epoch(), 2);

        let out = call.remove_listener(first).unwrap();
        assert_eq!(out[0].opcode(), op::CLIENT_DISCONNECT);
        run_commit(&mut call, &mut bot, binary(&out[1]), &recognized);
        assert_eq!(call.listener_ids(), vec![second]);
        let frame = bot.encrypt_opus(&[0x78, 7, 7]).unwrap().into_owned();
        match call.decrypt(&frame) {
            DaveDecrypt::Ok(p) => assert_eq!(p, vec![0x78, 7, 7]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn key_package_of_another_user_is_refused() {
        let mut call = DaveCall::new(CHANNEL, BOT, 1, DaveJoin::WelcomeBot).unwrap();
        let mut other = DaveSession::new(PROTOCOL_VERSION, BOT + 1, CHANNEL, None).unwrap();
        let e = call
            .on_key_package(&other.create_key_package().unwrap())
            .unwrap_err();
        assert!(e.contains("identity"), "{e}");
        assert!(call.on_key_package(&[1, 2, 3]).is_err());
    }

    #[test]
    fn sole_member_gets_no_proposals() {
        let mut call = DaveCall::new(CHANNEL, BOT, 0, DaveJoin::WelcomeBot).unwrap();
        assert_eq!(call.start().len(), 1, "no op 11 without other members");
        let mut bot = bot_session();
        assert!(
            call.on_key_package(&bot.create_key_package().unwrap())
                .unwrap()
                .is_empty()
        );
        let frame = [0x78u8, 1, 2, 0xFA, 0xFA];
        assert!(matches!(call.decrypt(&frame), DaveDecrypt::NoMember));
    }
}
