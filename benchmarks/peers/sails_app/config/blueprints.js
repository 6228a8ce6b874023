module.exports.blueprints = { actions: false, rest: true, shortcuts: false };
