// "Join as a peer": the dashboard page becomes a browser peer of the node it is served by
// (f0peer.js). Off by default: a read-only observer takes no part in the mesh.

function setStatus(el, text) {
  el.textContent = text;
}

export function peerToggle(checkbox, status) {
  let peer = null;
  checkbox.checked = false;
  checkbox.addEventListener("change", async () => {
    checkbox.disabled = true;
    status.hidden = false;
    try {
      if (checkbox.checked) {
        setStatus(status, "joining…");
        const { F0Peer } = await import("/f0peer.js");
        // its own key name: a third-party page of this origin keeps its identity apart
        peer = await F0Peer.join(location.origin, { key: "dashboard" });
        status.title = peer.peerId;
        setStatus(status, `peer …${peer.peerId.slice(-6)}`);
        peer.events.addEventListener("link", () => {
          const open = [...peer.links.values()].filter((l) => l.state === "open").length;
          setStatus(status, open ? `peer …${peer.peerId.slice(-6)}` : "peer: no open link");
        });
      } else if (peer) {
        await peer.close();
        peer = null;
        status.hidden = true;
      }
    } catch (err) {
      checkbox.checked = false;
      peer = null;
      setStatus(status, `could not join: ${err.message ?? err}`);
    } finally {
      checkbox.disabled = false;
    }
  });
}
