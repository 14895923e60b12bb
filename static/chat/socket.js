// The chat WebSocket (docs/protocol.md), reconnecting with backoff.

const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 10000];
const CLOSE_NOT_AUTHENTICATED = 4401;
const CLOSE_BAD_ORIGIN = 4403;

export class ChatSocket {
  /**
   * @param {object} handlers
   * @param {(event: object) => void} handlers.onEvent   every server frame
   * @param {(reconnect: boolean) => void} handlers.onOpen  after each (re)connect
   * @param {(state: string) => void} handlers.onState  "connecting" | "open" | "reconnecting" | "refused"
   * @param {() => void} handlers.onUnauthenticated  close code 4401
   */
  constructor(handlers) {
    this.handlers = handlers;
    this.url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws/chat/`;
    this.ws = null;
    this.attempt = 0;
    this.everOpened = false;
    this.timer = null;
    this.closing = false;
  }

  connect() {
    clearTimeout(this.timer);
    this.handlers.onState(this.everOpened ? "reconnecting" : "connecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener("open", () => {
      const reconnect = this.everOpened;
      this.everOpened = true;
      this.attempt = 0;
      this.handlers.onState("open");
      this.handlers.onOpen(reconnect);
    });
    ws.addEventListener("message", (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      if (event && typeof event === "object") this.handlers.onEvent(event);
    });
    ws.addEventListener("close", (close) => {
      if (this.ws !== ws || this.closing) return;
      this.ws = null;
      if (close.code === CLOSE_NOT_AUTHENTICATED) {
        this.handlers.onUnauthenticated();
        return;
      }
      if (close.code === CLOSE_BAD_ORIGIN) {
        this.handlers.onState("refused");
        return;
      }
      this.scheduleReconnect();
    });
  }

  scheduleReconnect() {
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    this.handlers.onState("reconnecting");
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** Reconnect now (e.g. the browser came back online) instead of waiting. */
  nudge() {
    if (!this.ws && !this.closing && this.timer) {
      this.attempt = 0;
      this.connect();
    }
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /** Send a frame; returns false if the socket isn't open. */
  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  close() {
    this.closing = true;
    clearTimeout(this.timer);
    this.ws?.close(1000);
  }
}
