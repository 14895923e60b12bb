// Following the newest text: the transcript stays scrolled to the bottom while
// a reply grows, until the person scrolls up; then a "Jump to latest" button
// takes them back down and following resumes.

const NEAR_BOTTOM_PX = 80;

export class Follower {
  /**
   * @param {HTMLElement} scroller  the scrolling transcript
   * @param {HTMLButtonElement} button  "Jump to latest", hidden while following
   * @param {() => void} afterJump  where focus goes once the button hides
   */
  constructor(scroller, button, afterJump) {
    this.scroller = scroller;
    this.button = button;
    this.following = true;
    this.lastTop = scroller.scrollTop;
    scroller.addEventListener("scroll", () => this.onScroll(), { passive: true });
    button.addEventListener("click", () => {
      this.jump();
      afterJump();
    });
  }

  isNearBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < NEAR_BOTTOM_PX;
  }

  onScroll() {
    const top = this.scroller.scrollTop;
    // Growth below never moves scrollTop; only the reader (a wheel, a key, the
    // scroll bar, the browser's find) scrolls up.
    if (this.isNearBottom()) this.setFollowing(true);
    else if (top < this.lastTop - 2) this.setFollowing(false);
    this.lastTop = top;
  }

  setFollowing(following) {
    this.following = following;
    this.button.hidden = following;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.lastTop = this.scroller.scrollTop;
  }

  /** After the transcript changed: keep to the bottom if following. */
  settle() {
    if (this.following) this.scrollToBottom();
  }

  /** Go to the bottom and follow from now on (a new turn, the button). */
  jump() {
    this.setFollowing(true);
    this.scrollToBottom();
  }
}
