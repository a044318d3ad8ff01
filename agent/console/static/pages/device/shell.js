export function render(el){el.textContent='todo'}
