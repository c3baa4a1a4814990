mod link;
mod nft;
