// Placeholder shell: the web UI's modules replace this file.
const main = document.getElementById("app");
if (main !== null) {
  main.textContent = "flwd";
}
